package scoreboard

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// churnURI is the URI of request k: k repeated, so that a line made of two
// requests' bytes is detectable, and of a length that varies with k, so that
// a line length from one request and bytes from another are too. The line
// always fits in the 64-byte field.
func churnURI(k uint64) string {
	ks := strconv.FormatUint(k, 10)
	// The line must fit in 64 bytes: "GET " + uri + " HTTP/1.1".
	reps := min(1+int(k%7), 50/(len(ks)+1))
	return "/" + strings.Repeat(ks+"/", reps)
}

// churn plays a worker: request k has the line of churnURI(k), starts at
// unix nanosecond k and sends k bytes. It stores in served the number of
// requests finished, and runs until stop reports true.
func churn(w *WorkerSlot, served *atomic.Uint64, stop func() bool) {
	for k := uint64(1); !stop(); k++ {
		w.StartRequest(time.Unix(0, int64(k)), netip.Addr{}, "GET", churnURI(k), "HTTP/1.1")
		w.EndRequest(time.Unix(0, int64(k)+1000), int64(k))
		served.Store(k)
	}
}

// checkChurn checks that info is a consistent picture of a slot driven by
// churn: the request line is entirely request k's, k is the recorded start
// time, and the counters are those after k-1 or k requests.
func checkChurn(info WorkerInfo) error {
	if info.RequestLine == "" && info.Requests == 0 {
		return nil // before the first request
	}
	fields := strings.Fields(info.RequestLine)
	if len(fields) != 3 || fields[0] != "GET" || fields[2] != "HTTP/1.1" {
		return fmt.Errorf("torn line %q", info.RequestLine)
	}
	ks, _, _ := strings.Cut(strings.TrimPrefix(fields[1], "/"), "/")
	k, err := strconv.ParseUint(ks, 10, 64)
	if err != nil {
		return fmt.Errorf("torn line %q", info.RequestLine)
	}
	if want := "GET " + churnURI(k) + " HTTP/1.1"; info.RequestLine != want {
		return fmt.Errorf("torn line %q, request %d's is %q", info.RequestLine, k, want)
	}
	if got := uint64(info.RequestStart.UnixNano()); got != k {
		return fmt.Errorf("line of request %d with start time of request %d", k, got)
	}
	n := info.Requests
	if n != k && n != k-1 {
		return fmt.Errorf("line of request %d with %d requests counted", k, n)
	}
	if want := n * (n + 1) / 2; info.Bytes != want {
		return fmt.Errorf("%d requests with %d bytes, want %d", n, info.Bytes, want)
	}
	if n > 0 && info.LastUsed.UnixNano() != int64(n)+1000 {
		return fmt.Errorf("%d requests, last used at %d", n, info.LastUsed.UnixNano())
	}
	return nil
}

// TestSeqlock hammers one slot with a writer while readers take snapshots,
// and checks that no snapshot mixes two updates. It runs on a real mmapped
// board and on a heap board, which the race detector can see into.
func TestSeqlock(t *testing.T) {
	boards := []struct {
		name string
		new  func(testing.TB, int, int) *Board
	}{
		{"mmap", newBoard},
		{"heap", newHeapBoard},
	}
	for _, bb := range boards {
		t.Run(bb.name, func(t *testing.T) {
			b := bb.new(t, 2, 2)
			w := b.Worker(1, 1)
			const readers = 3
			// Both sides must get well into their work while the other
			// runs; the deadline only guards against a slow machine.
			const enough = 20000
			deadline := time.Now().Add(3 * time.Second)
			if testing.Short() {
				deadline = time.Now().Add(300 * time.Millisecond)
			}
			var stopped atomic.Bool
			stop := func() bool { return stopped.Load() }

			var written atomic.Uint64
			var reads, torn atomic.Int64
			var wg sync.WaitGroup
			wg.Go(func() { churn(w, &written, stop) })
			for r := 0; r < readers; r++ {
				wg.Go(func() {
					for !stop() {
						var info WorkerInfo
						if r == 0 {
							info = b.Snapshot().Workers[1][1]
						} else {
							info = w.Snapshot()
						}
						reads.Add(1)
						if err := checkChurn(info); err != nil {
							if torn.Add(1) <= 5 {
								t.Errorf("reader %d: %v", r, err)
							}
						}
					}
				})
			}
			for (written.Load() < enough || reads.Load() < enough) && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			stopped.Store(true)
			wg.Wait()
			t.Logf("%d snapshots during %d requests, %d inconsistent", reads.Load(), written.Load(), torn.Load())
			if written.Load() == 0 || reads.Load() == 0 {
				t.Error("the writer or the readers never ran")
			}
			final := w.Snapshot()
			if err := checkChurn(final); err != nil || final.Requests != written.Load() {
				t.Errorf("final snapshot %+v: %v", final, err)
			}
		})
	}
}
