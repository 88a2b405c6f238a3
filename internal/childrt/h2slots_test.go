package childrt

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/h2/h2test"
)

// TestHTTP2StreamsTakeSlots: under worker and prefork, an HTTP/2
// connection's streams each take a slot, as HTTP/1.1 requests do: with
// five requests at once on one connection, a worker child of three slots
// runs three (three busy on the scoreboard) and the other two once slots
// are free; a prefork child (one slot) runs them one at a time. Requests
// the fast path answers inline wait for the connection's slot as the
// others do (a handler's request on it sends them to the handler). Every
// request is answered, and the slots are free afterwards.
func TestHTTP2StreamsTakeSlots(t *testing.T) {
	for _, tc := range []struct {
		model Model
		slots int
	}{{ModelWorker, 3}, {ModelPrefork, 1}} {
		t.Run(string(tc.model), func(t *testing.T) {
			rt, addr, events, b := modelRuntime(t, tc.model, tc.slots)
			rt.Fast = testFast{}
			cfg := withTLS(t, rt, addr)
			var running, most atomic.Int32
			release := make(chan struct{})
			serveForTest(t, rt, events, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := running.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				<-release
				running.Add(-1)
				io.WriteString(w, "done "+r.URL.Path)
			}))
			tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			// One connection: the first request makes it.
			if resp, err := client.Get("https://" + addr + "/a"); err != nil || resp.ProtoMajor != 2 {
				t.Fatalf("first request: %v %v", resp, err)
			} else {
				resp.Body.Close()
			}

			const n = 5
			var wg sync.WaitGroup
			bodies := make([]string, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := client.Get("https://" + addr + "/slow/" + string(rune('0'+i)))
					if err != nil {
						t.Errorf("request %d: %v", i, err)
						return
					}
					defer resp.Body.Close()
					body, _ := io.ReadAll(resp.Body)
					bodies[i] = string(body)
				}()
			}
			deadline := time.Now().Add(5 * time.Second)
			for running.Load() < int32(tc.slots) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond) // the others have come by now
			if got := running.Load(); got != int32(tc.slots) {
				t.Errorf("%d requests run at once on %d slots", got, tc.slots)
			}
			if got := strings.Count(b.Snapshot().Letters(), "W"); got != tc.slots {
				t.Errorf("scoreboard %q: %d busy, want %d", b.Snapshot().Letters(), got, tc.slots)
			}
			// A request the fast path answers waits its turn too.
			fast := make(chan string, 1)
			go func() { fast <- bodyOf(client, "https://"+addr+"/a") }()
			time.Sleep(100 * time.Millisecond)
			close(release)
			wg.Wait()
			for i, body := range bodies {
				if want := "done /slow/" + string(rune('0'+i)); body != want {
					t.Errorf("request %d: %q, want %q", i, body, want)
				}
			}
			if got := <-fast; got != "fast" && got != "done /a" {
				t.Errorf("the inline request: %q", got)
			}
			if got := most.Load(); got != int32(tc.slots) {
				t.Errorf("at most %d requests ran at once, want %d", got, tc.slots)
			}
			// No slot serves or reads: the connection's own is in
			// keep-alive, the others idle (a stream that ran on another
			// slot leaves the connection's "reading" no more).
			deadline = time.Now().Add(2 * time.Second)
			for strings.ContainsAny(b.Snapshot().Letters(), "WR") && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if got := b.Snapshot().Letters(); strings.ContainsAny(got, "WR") || strings.Count(got, "K") != 1 {
				t.Errorf("scoreboard %q after the requests, want one K and no W or R", got)
			}
			var requests uint64
			for slot := range tc.slots {
				requests += b.Worker(1, slot).Snapshot().Requests
			}
			if requests != n+2 {
				t.Errorf("%d requests counted, want %d", requests, n+2)
			}
		})
	}
}

// TestHTTP2ClosedConnectionKeepsItsSlot: a prefork child's HTTP/2 client
// that leaves while its request runs does not free the slot for another
// connection until the request ends: an app process of prefork's serves
// one request at a time.
func TestHTTP2ClosedConnectionKeepsItsSlot(t *testing.T) {
	rt, addr, events, _ := modelRuntime(t, ModelPrefork, 1)
	cfg := withTLS(t, rt, addr)
	cfg.NextProtos = []string{"h2"}
	running := make(chan struct{}, 1)
	release := make(chan struct{})
	serveForTest(t, rt, events, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			running <- struct{}{}
			<-release
		}
		io.WriteString(w, "done "+r.URL.Path)
	}))
	c, fr := h2test.Dial(t, addr, cfg, 10*time.Second)
	h2test.Request(fr, 1, "GET", "/slow", true)
	select {
	case <-running:
	case <-time.After(5 * time.Second):
		t.Fatal("the HTTP/2 request did not start")
	}
	c.Close()

	h1 := cfg.Clone()
	h1.NextProtos = []string{"http/1.1"}
	got := make(chan string, 1)
	tr := &http.Transport{TLSClientConfig: h1}
	defer tr.CloseIdleConnections()
	go func() { got <- bodyOf(&http.Client{Transport: tr, Timeout: 10 * time.Second}, "https://"+addr+"/next") }()
	select {
	case body := <-got:
		t.Fatalf("another connection was served (%q) while the gone client's request ran on the only slot", body)
	case <-time.After(500 * time.Millisecond):
	}
	close(release)
	select {
	case body := <-got:
		if body != "done /next" {
			t.Fatalf("after the request ended: %q", body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the slot was not given back when the gone client's request ended")
	}
}

// bodyOf GETs url and returns the body, or the error's text.
func bodyOf(c *http.Client, url string) string {
	resp, err := c.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// TestStreamTakingTheLastSlotWakesTheReclaimer: an HTTP/2 stream that
// takes a worker child's last free slot tells the reclaimer the child is
// full, as a connection taking it does (capacity.hold), so that idle
// keep-alive connections can be closed for clients waiting in the queue.
func TestStreamTakingTheLastSlotWakesTheReclaimer(t *testing.T) {
	c := newCapacity(2, 0, 0)
	if _, ok := c.take(false); !ok { // a connection's slot
		t.Fatal("no slot")
	}
	select {
	case <-c.fullSig:
		t.Fatal("full with a slot free")
	default:
	}
	w := &slotWaiter{ch: make(chan int, 1)}
	c.takeFor(w)
	if s := <-w.ch; s != 1 && s != 0 {
		t.Fatalf("slot %d", s)
	}
	select {
	case <-c.fullSig:
	default:
		t.Fatal("the reclaimer was not told the child is full")
	}
}
