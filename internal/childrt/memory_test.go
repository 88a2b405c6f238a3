package childrt

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/procfs"
)

// exeRSS is the resident KiB of this process's mappings of its executable.
func exeRSS(t *testing.T) int {
	t.Helper()
	kib, err := procfs.ExeResident(0)
	if err != nil {
		t.Fatal(err)
	}
	return kib
}

// TestReleaseExecutablePages: the executable's read-only pages a process
// mapped are let go (and the process goes on running the code it needs).
func TestReleaseExecutablePages(t *testing.T) {
	before := exeRSS(t)
	n := releaseExecutablePages()
	after := exeRSS(t)
	t.Logf("executable mappings: %d KiB resident before, %d KiB after; %d bytes of mappings released", before, after, n)
	if n == 0 {
		t.Fatal("no mapping of the executable released")
	}
	// Other tests of this package run meanwhile and fault their code back
	// in (a loaded make test kept 52%); an idle child's own figure is
	// e2e's TestIdleChildMapsLittleOfTheBinary.
	if after >= before {
		t.Errorf("%d KiB of the executable still resident, no less than the %d KiB before", after, before)
	}
}

// TestReleaseWhenAccepting: a child lets go of its start's pages of the
// binary once the goroutines that accept (the fast path's, net/http's for
// the connections it hands over) wait in Accept, so that their own start
// does not fault pages back in after the release.
func TestReleaseWhenAccepting(t *testing.T) {
	stacks := make(chan string, 1)
	saved := releaseStart
	releaseStart = func() int {
		buf := make([]byte, 1<<20)
		stacks <- string(buf[:runtime.Stack(buf, true)])
		return 0
	}
	t.Cleanup(func() { releaseStart = saved })
	rt, addr, events, _ := modelRuntime(t, ModelEvent, 4)
	rt.Fast = testFast{}
	serveForTest(t, rt, events, slowHandler)
	var all string
	select {
	case all = <-stacks:
	case <-time.After(5 * time.Second):
		t.Fatal("no release")
	}
	servers := 0
	for _, g := range strings.Split(all, "\n\n") {
		if !strings.Contains(g, "childrt.(*server).acceptFast(") && !strings.Contains(g, "net/http.(*Server).Serve(") {
			continue
		}
		servers++
		if !strings.Contains(g, "childrt.startedListener.Accept(") {
			t.Errorf("released while a goroutine that accepts had not called Accept:\n%s", g)
		}
	}
	if servers < 2 {
		t.Errorf("%d goroutines that accept at the release, want the fast path's and the hand-off's:\n%s", servers, all)
	}
	if r, _ := exchange(t, addr, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1, "GET"); r[0].code != 200 || r[0].path != "fast" {
		t.Errorf("GET /a after the release: %d from %q", r[0].code, r[0].path)
	}
}

// TestSampleHeapOnlyWhenAsked: a child samples no allocation for a heap
// profile unless HeapProfileEnv asks for one.
func TestSampleHeapOnlyWhenAsked(t *testing.T) {
	saved := runtime.MemProfileRate
	t.Cleanup(func() { runtime.MemProfileRate = saved })
	t.Setenv(HeapProfileEnv, "/tmp/profiles")
	runtime.MemProfileRate = 512 << 10
	SampleHeapOnlyWhenAsked()
	if runtime.MemProfileRate != 512<<10 {
		t.Errorf("with %s set, MemProfileRate %d, want it left at %d", HeapProfileEnv, runtime.MemProfileRate, 512<<10)
	}
	t.Setenv(HeapProfileEnv, "")
	SampleHeapOnlyWhenAsked()
	if runtime.MemProfileRate != 0 {
		t.Errorf("without %s, MemProfileRate %d, want 0", HeapProfileEnv, runtime.MemProfileRate)
	}
}

// TestCPUProfile: with CPUProfileEnv set, a child profiles its CPU from
// when it is ready and writes the profile (gzipped, as pprof writes it)
// when it stops, leaving the profiler free.
func TestCPUProfile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(CPUProfileEnv, dir)
	rt, addr, events := testRuntime(t)
	sigs, done := serveAsync(t, rt, events, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	go func() {
		for events.Scan() {
		}
	}()
	dialAndGet(t, addr)
	sigs <- syscall.SIGINT
	waitDone(t, done, "serve did not return after SIGINT")
	b, err := os.ReadFile(filepath.Join(dir, "cpu-"+strconv.Itoa(os.Getpid())+".pprof"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("the profile (%d bytes) is not gzipped", len(b))
	}
	// The profile was stopped: another can start.
	if err := pprof.StartCPUProfile(io.Discard); err != nil {
		t.Fatalf("the child's CPU profile is still running: %v", err)
	}
	pprof.StopCPUProfile()
}
