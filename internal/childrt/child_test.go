package childrt

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/contract"
)

// runtime returns a Runtime serving on a fresh loopback listener, as if a
// master had started it, with the events it reports readable from events.
func testRuntime(t testing.TB) (rt *Runtime, addr string, events *bufio.Scanner) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Close() })
	rt = &Runtime{
		Log:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		DrainTimeout: 5 * time.Second,
		Timeouts:     Timeouts{ReadHeader: 5 * time.Second, Read: 5 * time.Second, Write: 5 * time.Second, Idle: 5 * time.Second},
		listeners:    []net.Listener{ln},
		addrs:        []string{ln.Addr().String()},
		events:       pw,
	}
	return rt, ln.Addr().String(), bufio.NewScanner(pr)
}

func expect(t testing.TB, sc *bufio.Scanner, want contract.Event) {
	t.Helper()
	if !sc.Scan() || sc.Text() != string(want) {
		t.Fatalf("event %q, want %q", sc.Text(), want)
	}
}

func get(t *testing.T, c net.Conn, br *bufio.Reader) *http.Response {
	t.Helper()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// serveAsync serves h on rt in the background and waits for "ready".
func serveAsync(t *testing.T, rt *Runtime, events *bufio.Scanner, h http.Handler) (chan<- os.Signal, <-chan error) {
	t.Helper()
	sigs := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- rt.serve(h, sigs) }()
	expect(t, events, contract.EventReady)
	return sigs, done
}

// serveForTest serves h on rt in the background until the test ends (then
// SIGINT, and waits for serve to return), once it is ready; the child's
// later events are read and dropped.
func serveForTest(t *testing.T, rt *Runtime, events *bufio.Scanner, h http.Handler) {
	t.Helper()
	sigs, done := serveAsync(t, rt, events, h)
	go func() {
		for events.Scan() {
		}
	}()
	t.Cleanup(func() {
		sigs <- syscall.SIGINT
		<-done
	})
}

// waitDone waits (bounded) for serve to return nil.
func waitDone(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal(what)
	}
}

// dialAndGet opens a connection and completes one request on it.
func dialAndGet(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	get(t, c, bufio.NewReader(c))
	return c
}

// TestDrainServesAcceptedConnections is DESIGN.md's first pitfall: a
// connection accepted before the drain whose request arrives after it began
// must be answered, not dropped; a keep-alive connection gets its next
// answer with "Connection: close".
func TestDrainServesAcceptedConnections(t *testing.T) {
	rt, addr, events := testRuntime(t)
	sigs, done := serveAsync(t, rt, events, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))

	kept, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	kbr := bufio.NewReader(kept)
	if resp := get(t, kept, kbr); resp.Close {
		t.Fatal("keep-alive connection closed before the drain")
	}
	silent, err := net.Dial("tcp", addr) // accepted, request not sent yet
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	time.Sleep(50 * time.Millisecond) // let the server accept it

	sigs <- syscall.SIGUSR1
	expect(t, events, contract.EventRetiring)
	time.Sleep(50 * time.Millisecond)

	if resp := get(t, silent, bufio.NewReader(silent)); resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("request on the accepted connection: %d close=%v", resp.StatusCode, resp.Close)
	}
	if resp := get(t, kept, kbr); resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("next keep-alive request: %d close=%v, want 200 with Connection: close", resp.StatusCode, resp.Close)
	}
	waitDone(t, done, "drain did not finish")
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("still accepting after the drain")
	}
}

func TestDrainClosesIdleConnectionsAfterQuietPeriod(t *testing.T) {
	rt, addr, events := testRuntime(t)
	sigs, done := serveAsync(t, rt, events, http.NotFoundHandler())
	dialAndGet(t, addr)
	start := time.Now()
	sigs <- syscall.SIGTERM
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("idle connection kept the drain open")
	}
	if d := time.Since(start); d < quietPeriod {
		t.Fatalf("idle connection closed after %s, before the quiet period %s", d, quietPeriod)
	}
}

func TestDrainIsBounded(t *testing.T) {
	rt, addr, events := testRuntime(t)
	rt.DrainTimeout = 300 * time.Millisecond
	block := make(chan struct{})
	defer close(block)
	sigs, done := serveAsync(t, rt, events, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	sigs <- syscall.SIGUSR1
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("a stuck request held the drain past its bound")
	}
}

func TestImmediateStop(t *testing.T) {
	rt, addr, events := testRuntime(t)
	sigs, done := serveAsync(t, rt, events, http.NotFoundHandler())
	dialAndGet(t, addr)
	sigs <- syscall.SIGINT
	select {
	case <-done:
	case <-time.After(quietPeriod / 2):
		t.Fatal("SIGINT did not stop the child at once")
	}
}

// TestRetireRequestWaitsForTheMaster: with a master, an operator's SIGTERM
// or SIGUSR1 to one child is a request: the child says so and goes on
// accepting and serving until the master's DrainSignal, then drains.
func TestRetireRequestWaitsForTheMaster(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGUSR1} {
		t.Run(sig.String(), func(t *testing.T) {
			rt, addr, events := testRuntime(t)
			rt.MasterPID = os.Getppid() // the "master" is alive
			sigs, done := serveAsync(t, rt, events, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
			sigs <- sig
			expect(t, events, contract.EventRetireRequest)
			sigs <- sig // asking twice asks once
			time.Sleep(50 * time.Millisecond)
			// Still accepting: a new connection is served, and kept alive.
			c := dialAndGet(t, addr)
			select {
			case err := <-done:
				t.Fatalf("the child stopped without the master's word: %v", err)
			default:
			}
			sigs <- DrainSignal
			expect(t, events, contract.EventRetiring)
			expect(t, events, contract.EventClosed) // draining, and no longer accepting
			if resp := get(t, c, bufio.NewReader(c)); resp.StatusCode != 200 || !resp.Close {
				t.Fatalf("next keep-alive request while draining: %d close=%v", resp.StatusCode, resp.Close)
			}
			waitDone(t, done, "drain did not finish")
		})
	}
}

func TestCurrentOutsidePhased(t *testing.T) {
	os.Unsetenv(contract.Env)
	if _, err := Current(); err != ErrNotChild {
		t.Fatalf("Current() = %v, want ErrNotChild", err)
	}
}

// TestAccessLogBatch: access-log lines go to a pipe (a container's stdout)
// in writes no larger than PIPE_BUF, which a pipe never interleaves with
// another child's; to a file in the Writer's larger batches.
func TestAccessLogBatch(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	if n := accessLogBatch(pw); n != pipeBuf {
		t.Errorf("a pipe: batch %d, want %d", n, pipeBuf)
	}
	f, err := os.Create(t.TempDir() + "/access.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := accessLogBatch(f); n != 0 {
		t.Errorf("a file: batch %d, want the default (0)", n)
	}
}
