package childrt

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"syscall"
	"testing"

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
