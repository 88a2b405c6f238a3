package childrt

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// HeapProfileEnv names a folder into which a child writes a heap profile
// (heap-PID.pprof; all allocations since the process began when it runs
// with GODEBUG=memprofilerate=1) and its memory statistics once it is
// ready: the measure behind bench/compare/MEMORY.md. The master passes
// variables named PHASED_* to no child: set it in app.env.
const HeapProfileEnv = "PHASED_CHILD_HEAP_PROFILE"

// SampleHeapOnlyWhenAsked turns the runtime's heap profiling off
// (runtime.MemProfileRate 0) unless HeapProfileEnv asks for a profile:
// nobody reads one from a child otherwise, and a sampled allocation (one
// every 512 KB by default) unwinds the whole stack, reading the function
// table of every frame, which in a child that let go of its start's pages
// faulted about 20 windows of 64 KB of the binary back in (1.2 MB mapped)
// when it fell on one of the first requests. A child calls it first
// thing, before its own allocations.
func SampleHeapOnlyWhenAsked() {
	if os.Getenv(HeapProfileEnv) == "" {
		runtime.MemProfileRate = 0
	}
}

// startWaitBound bounds the wait for the accepting goroutines before the
// release: one that has not reached Accept by then (a server already
// closed, a machine overloaded) only costs pages mapped again.
const startWaitBound = time.Second

// startGroup tells when the goroutines that accept connections have all
// called Accept once: until then they run their start (net/http's Serve
// sets itself up, stacks grow), whose pages of the binary a release made
// before would let them fault back in, 64 KB around each fault, and an
// idle child would map more or less of the binary by chance.
type startGroup struct{ wg sync.WaitGroup }

// add returns ln, which marks its goroutine started at its first Accept.
func (g *startGroup) add(ln net.Listener) net.Listener {
	g.wg.Add(1)
	return startedListener{ln, sync.OnceFunc(g.wg.Done)}
}

// wait waits until every listener of g was accepted on, at most bound.
func (g *startGroup) wait(bound time.Duration) {
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	t := time.NewTimer(bound)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

type startedListener struct {
	net.Listener
	started func()
}

func (l startedListener) Accept() (net.Conn, error) {
	l.started()
	return l.Listener.Accept()
}

// CPUProfileEnv names a folder into which a child writes a CPU profile
// (cpu-PID.pprof) of its whole serving life: from when it is ready to when
// it stops (a drain, a stop), for bench/PROFILES.md. Debug only: set it in
// app.env, as HeapProfileEnv.
const CPUProfileEnv = "PHASED_CHILD_CPU_PROFILE"

// afterReady runs once the child serves: it lets go of the pages of the
// binary that starting touched (releaseExecutablePages), writes the heap
// profile HeapProfileEnv asks for and starts the CPU profile CPUProfileEnv
// asks for.
func (r *Runtime) afterReady() {
	n := releaseStart()
	r.Log.Debug("released the start's pages of the executable", "bytes", n)
	if dir := os.Getenv(HeapProfileEnv); dir != "" {
		writeHeapProfile(r, dir)
	}
	if dir := os.Getenv(CPUProfileEnv); dir != "" {
		r.cpuProfile = startCPUProfile(r, dir)
	}
}

// startCPUProfile starts writing dir/cpu-PID.pprof; the file it returns
// (nil on failure, which it logs) is stopCPUProfile's.
func startCPUProfile(r *Runtime, dir string) *os.File {
	path := filepath.Join(dir, "cpu-"+strconv.Itoa(os.Getpid())+".pprof")
	f, err := os.Create(path)
	if err == nil {
		if err = pprof.StartCPUProfile(f); err != nil {
			f.Close()
		}
	}
	if err != nil {
		r.Log.Warn("cannot write the CPU profile", "env", CPUProfileEnv, "dir", dir, "err", err)
		return nil
	}
	return f
}

// stopCPUProfile ends the CPU profile afterReady started, if any.
func (r *Runtime) stopCPUProfile() {
	if r.cpuProfile == nil {
		return
	}
	pprof.StopCPUProfile()
	if err := r.cpuProfile.Close(); err != nil {
		r.Log.Warn("cannot write the CPU profile", "env", CPUProfileEnv, "file", r.cpuProfile.Name(), "err", err)
	}
	r.cpuProfile = nil
}

// releaseStart is releaseExecutablePages; tests look at what runs when
// it is called.
var releaseStart = releaseExecutablePages

// releaseExecutablePages drops this process's page-table entries for the
// read-only mappings of its executable (code and read-only data) with
// madvise(MADV_DONTNEED): the pages stay in the page cache, shared with the
// master and the other children, and the child maps again only those it
// touches from then on. Starting (every linked package's init, the
// contract, the configuration) touches far more of phased's binary than
// serving does: an idle child mapped 12.9 MB of it, 3.3 MB of its PSS
// with two children (bench/compare/MEMORY.md). Read-only private file
// mappings hold no private data, so nothing is lost. It returns the bytes
// of the mappings released.
func releaseExecutablePages() int {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0
	}
	defer f.Close()
	released := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || (fields[1] != "r-xp" && fields[1] != "r--p") {
			continue
		}
		lo, hi, _ := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED); errno == 0 {
			released += int(end - start)
		}
	}
	return released
}

// writeHeapProfile writes dir/memstats-PID.txt (the runtime's memory
// statistics after a collection, read before the profile is written) and
// dir/heap-PID.pprof.
func writeHeapProfile(r *Runtime, dir string) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	pid := strconv.Itoa(os.Getpid())
	err := os.WriteFile(filepath.Join(dir, "memstats-"+pid+".txt"), fmt.Appendf(nil,
		"HeapAlloc %d\nHeapInuse %d\nHeapIdle %d\nHeapReleased %d\nStackInuse %d\nMSpanInuse %d\nGCSys %d\nOtherSys %d\nBuckHashSys %d\nSys %d\nNumGC %d\nTotalAlloc %d\n",
		ms.HeapAlloc, ms.HeapInuse, ms.HeapIdle, ms.HeapReleased, ms.StackInuse, ms.MSpanInuse,
		ms.GCSys, ms.OtherSys, ms.BuckHashSys, ms.Sys, ms.NumGC, ms.TotalAlloc), 0o644)
	if err == nil {
		var f *os.File
		if f, err = os.Create(filepath.Join(dir, "heap-"+pid+".pprof")); err == nil {
			err = pprof.Lookup("heap").WriteTo(f, 0)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
	}
	if err != nil {
		r.Log.Warn("cannot write the heap profile", "env", HeapProfileEnv, "dir", dir, "err", err)
	}
}
