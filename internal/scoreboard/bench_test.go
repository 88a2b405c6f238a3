package scoreboard

import (
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkRequest measures what a worker pays per request: StartRequest
// and EndRequest on its own slot of a real mmapped board. "parallel" gives
// every goroutine a slot of its own, side by side, as a worker child's
// threads have: the slots' padding keeps them from slowing each other down.
func BenchmarkRequest(b *testing.B) {
	now := time.Now()
	b.Run("serial", func(b *testing.B) {
		sb := newBoard(b, 1, 1)
		w := sb.Worker(0, 0)
		b.ReportAllocs()
		for b.Loop() {
			w.StartRequest(now, netip.Addr{}, "GET", "/index.html", "HTTP/1.1")
			w.EndRequest(now, 1234)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		sb := newBoard(b, 1, runtime.GOMAXPROCS(0))
		var next atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			w := sb.Worker(0, int(next.Add(1)-1)%sb.ThreadsPerProc())
			for pb.Next() {
				w.StartRequest(now, netip.Addr{}, "GET", "/index.html", "HTTP/1.1")
				w.EndRequest(now, 1234)
			}
		})
	})
}

// BenchmarkSnapshot measures the master reading a whole board of 32
// processes x 25 threads (800 worker slots), all of which have served
// requests, and summarising it.
func BenchmarkSnapshot(b *testing.B) {
	sb := newBoard(b, 32, 25)
	now := time.Now()
	for i := 0; i < sb.Procs(); i++ {
		sb.Proc(i).SetPID(1000 + i)
		for j := 0; j < sb.ThreadsPerProc(); j++ {
			w := sb.Worker(i, j)
			w.StartRequest(now, netip.Addr{}, "GET", "/some/rather/long/path/to/a/resource.html?with=query", "HTTP/1.1")
			w.EndRequest(now, 4096)
			w.SetState(State(j % NumStates))
		}
	}
	b.Run("snapshot", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sb.Snapshot()
		}
	})
	b.Run("snapshot+summary+letters", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s := sb.Snapshot()
			s.Summary()
			s.Letters()
		}
	})
}
