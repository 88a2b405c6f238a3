package acceptmutex

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/phasedhq/phased/internal/sockconn/queuetest"
)

// socket opens a listening socket on a free loopback port and returns it
// as the *os.File a child would inherit.
func socket(t *testing.T) (*os.File, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, ln.Addr().String()
}

func listen(t *testing.T, f *os.File, lockPath string) *Listener {
	t.Helper()
	l, err := Listen(f, lockPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func get(client *http.Client, url string) (string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), nil
}

func noKeepAlive() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

func TestServeHTTP(t *testing.T) {
	f, addr := socket(t)
	l := listen(t, f, filepath.Join(t.TempDir(), "accept.lock"))
	if got := l.Addr().String(); got != addr {
		t.Errorf("Addr() = %s, want %s", got, addr)
	}
	served := make(chan error, 1)
	go func() {
		served <- http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello "+r.URL.Path)
		}))
	}()
	client := noKeepAlive()
	const n = 20
	for i := range n {
		body, err := get(client, fmt.Sprintf("http://%s/%d", addr, i))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if want := fmt.Sprintf("hello /%d", i); body != want {
			t.Fatalf("request %d: body %q, want %q", i, body, want)
		}
	}
	if st := l.Stats(); st.Accepted != n || st.Failed != 0 {
		t.Errorf("Stats() = %+v, want %d accepted, 0 failed", st, n)
	}
	l.Close()
	select {
	case err := <-served:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("http.Serve returned %v, want net.ErrClosed", err)
		}
	case <-time.After(time.Second):
		t.Fatal("http.Serve still running a second after Close")
	}
	if err := l.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close() = %v, want net.ErrClosed", err)
	}
}

func TestListenErrors(t *testing.T) {
	dir := t.TempDir()
	sock, addr := socket(t)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	connected, err := conn.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer connected.Close()
	plain, err := os.Create(filepath.Join(dir, "plain"))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()

	tests := []struct {
		name     string
		f        *os.File
		lockPath string
	}{
		{"regular file", plain, filepath.Join(dir, "lock")},
		{"connected socket", connected, filepath.Join(dir, "lock")},
		{"lock file in a missing folder", sock, filepath.Join(dir, "no", "such", "lock")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Listen(tt.f, tt.lockPath)
			if err == nil {
				l.Close()
				t.Fatal("Listen succeeded")
			}
			t.Log(err)
		})
	}
}

// acceptAsync runs one Accept and delivers its outcome.
func acceptAsync(l *Listener) <-chan error {
	ch := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if c != nil {
			c.Close()
		}
		ch <- err
	}()
	return ch
}

// dialAccepted connects to addr and waits (2 s at most) for the Accept
// that done reports, by who, to take the connection.
func dialAccepted(t *testing.T, addr string, done <-chan error, who string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Accept() on %s = %v", who, err)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("%s did not accept within 2s", who)
	}
}

// holding installs a hook on l and returns a channel that is closed the
// first time l takes the lock.
func holding(l *Listener) <-chan struct{} {
	ch := make(chan struct{})
	var once sync.Once
	l.hook = func(locked bool) {
		if locked {
			once.Do(func() { close(ch) })
		}
	}
	return ch
}

func TestCloseUnblocksAccept(t *testing.T) {
	tests := []struct {
		name string
		// other, when true, makes a second Listener hold the lock, so that
		// the closed one is waiting for it rather than polling.
		other bool
	}{
		{name: "polling"},
		{name: "waiting for the lock", other: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, addr := socket(t)
			lockPath := filepath.Join(t.TempDir(), "accept.lock")
			var holder *Listener
			var holderDone <-chan error
			if tt.other {
				holder = listen(t, f, lockPath)
				locked := holding(holder)
				holderDone = acceptAsync(holder)
				<-locked
			}
			l := listen(t, f, lockPath)
			locked := holding(l)
			done := acceptAsync(l)
			if !tt.other {
				<-locked
			}
			time.Sleep(30 * time.Millisecond)
			start := time.Now()
			if err := l.Close(); err != nil {
				t.Fatalf("Close() = %v", err)
			}
			select {
			case err := <-done:
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("Accept() after Close = %v, want net.ErrClosed", err)
				}
				if d := time.Since(start); d > 250*time.Millisecond {
					t.Errorf("Accept returned %v after Close, want about 100ms at most", d)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("Accept still blocked 2s after Close")
			}
			if holder != nil {
				holder.Close()
				<-holderDone
			}

			// The lock is free: a new Listener on the same lock file takes
			// it and accepts.
			next := listen(t, f, lockPath)
			dialAccepted(t, addr, acceptAsync(next), "the next Listener (is the lock still held?)")
		})
	}
}

// serveOneAtATime is a prefork child: it accepts a connection, answers one
// HTTP/1.0 request with name, closes, and accepts the next, until l closes.
func serveOneAtATime(l *Listener, name string, served *atomic.Int64) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err == nil {
			req.Body.Close()
			time.Sleep(time.Millisecond)
			fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(name), name)
			served.Add(1)
		}
		c.Close()
	}
}

func TestTwoListenersTakeTurns(t *testing.T) {
	f, addr := socket(t)
	lockPath := filepath.Join(t.TempDir(), "accept.lock")
	var holders, overlaps atomic.Int64
	// Close lets the lock go before the closed Listener's Accept returns
	// and reports it; overlaps from then on are expected.
	var closing atomic.Bool
	hook := func(locked bool) {
		if locked {
			if holders.Add(1) > 1 && !closing.Load() {
				overlaps.Add(1)
			}
			return
		}
		holders.Add(-1)
	}
	names := []string{"a", "b"}
	served := make([]atomic.Int64, len(names))
	var wg sync.WaitGroup
	var ls []*Listener
	for i, name := range names {
		l := listen(t, f, lockPath)
		l.hook = hook
		ls = append(ls, l)
		wg.Go(func() { serveOneAtATime(l, name, &served[i]) })
	}

	client := noKeepAlive()
	const requests, clients = 200, 4
	var next atomic.Int64
	errs := make(chan error, requests)
	var cwg sync.WaitGroup
	for range clients {
		cwg.Go(func() {
			for next.Add(1) <= requests {
				if _, err := get(client, "http://"+addr+"/"); err != nil {
					errs <- err
				}
			}
		})
	}
	cwg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	closing.Store(true)
	for _, l := range ls {
		l.Close()
	}
	wg.Wait()

	if n := overlaps.Load(); n != 0 {
		t.Errorf("both listeners held the lock at once %d times", n)
	}
	var accepted, failed uint64
	for i, l := range ls {
		st := l.Stats()
		accepted += st.Accepted
		failed += st.Failed
		if served[i].Load() == 0 {
			t.Errorf("listener %s served nothing (stats %+v)", names[i], st)
		}
		t.Logf("listener %s: served %d, stats %+v", names[i], served[i].Load(), st)
	}
	if accepted != requests || failed != 0 {
		t.Errorf("accepted %d, failed %d; want %d, 0", accepted, failed, requests)
	}
}

func TestAcceptFromSeveralGoroutines(t *testing.T) {
	f, addr := socket(t)
	l := listen(t, f, filepath.Join(t.TempDir(), "accept.lock"))
	const n = 8
	conns := make(chan net.Conn, n)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				conns <- c
			}
		})
	}
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	for range n {
		select {
		case c := <-conns:
			c.Close()
		case <-time.After(2 * time.Second):
			t.Fatal("connection not accepted within 2s")
		}
	}
	l.Close()
	wg.Wait()
}

// listenWakeOne is ListenWakeOne on f, closed when the test ends.
func listenWakeOne(t *testing.T, f *os.File) *Listener {
	t.Helper()
	l, err := ListenWakeOne(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// acceptOnce runs one Accept on l once it waits, dials addr, and returns
// what Accept returned, or fails the test when Accept does not return
// within a bound far above the poll timeout (a liveness bound: the
// connection was lost).
func acceptOnce(t *testing.T, l *Listener, addr string) net.Conn {
	t.Helper()
	waiting := make(chan struct{})
	var once sync.Once
	l.Watch(func(w Wait) {
		if w != NotWaiting {
			once.Do(func() { close(waiting) })
		}
	})
	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		res <- result{c, err}
	}()
	<-waiting
	client, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	select {
	case r := <-res:
		if r.err != nil {
			t.Fatal(r.err)
		}
		t.Cleanup(func() { r.c.Close() })
		return r.c
	case <-time.After(5 * time.Second):
		t.Fatal("Accept never returned: the connection waits in the backlog with no wake-up for the Listener that waits")
		return nil
	}
}

// TestWakeOneClosedListenerTakesNoWakeup: a closed Listener whose Accept
// still sits in epoll_wait (for up to its poll timeout; a prefork child of
// the old generation in a graceful restart) must not take the kernel's one
// wake-up for a new connection: the Listener that waits gets it.
func TestWakeOneClosedListenerTakesNoWakeup(t *testing.T) {
	f, addr := socket(t)
	old := listenWakeOne(t, f) // first in the socket's wait queue
	waiting := make(chan struct{})
	var once sync.Once
	old.Watch(func(w Wait) {
		if w != NotWaiting {
			once.Do(func() { close(waiting) })
		}
	})
	oldDone := make(chan error, 1)
	go func() {
		c, err := old.Accept()
		if c != nil {
			c.Close()
		}
		oldDone <- err
	}()
	<-waiting
	l := listenWakeOne(t, f)
	old.Close() // its Accept goes on waiting until its poll timeout
	acceptOnce(t, l, addr)
	if st := l.Stats(); st.Stranded != 0 || st.Wakeups == 0 {
		t.Fatalf("the closed Listener took the connection's wake-up (the other found the connection at a poll timeout): %+v", st)
	}
	if err := <-oldDone; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the closed Listener's Accept: %v", err)
	}
}

// TestWakeOneStrandedConnection: when the wake-up for a connection went to
// a process that did not accept it (one closing its Listener in a graceful
// restart), a Listener that waits still takes the connection.
func TestWakeOneStrandedConnection(t *testing.T) {
	f, addr := socket(t)
	// Another process's epoll set, first to watch the socket, with a thread
	// waiting in it: it takes the exclusive wake-up and accepts nothing.
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ep)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(f.Fd())}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, int(f.Fd()), &ev); err != nil {
		t.Skipf("no EPOLLEXCLUSIVE here: %v", err)
	}
	l := listenWakeOne(t, f)
	woken := make(chan struct{})
	go func() {
		evs := make([]unix.EpollEvent, 1)
		for {
			n, err := unix.EpollWait(ep, evs, -1)
			if err == unix.EINTR {
				continue
			}
			if n > 0 {
				close(woken)
			}
			return
		}
	}()
	time.Sleep(50 * time.Millisecond) // let it reach epoll_wait: then it is first to be woken
	acceptOnce(t, l, addr)
	select {
	case <-woken:
	default:
		t.Skip("the other epoll set was not woken first: nothing stranded to test")
	}
	if st := l.Stats(); st.Stranded != 1 {
		t.Fatalf("Stranded = %d, want 1 (the connection's wake-up went elsewhere): %+v", st.Stranded, st)
	}
}

// TestSetDeadline: a deadline in the past makes a waiting Accept return a
// timeout at once, in both kinds of Listener, and the Listener accepts
// again once the deadline is cleared; a future deadline ends a wait when it
// comes.
func TestSetDeadline(t *testing.T) {
	for _, wakeOne := range []bool{false, true} {
		t.Run(fmt.Sprintf("wakeOne=%v", wakeOne), func(t *testing.T) {
			f, addr := socket(t)
			var l *Listener
			if wakeOne {
				l = listenWakeOne(t, f)
			} else {
				l = listen(t, f, filepath.Join(t.TempDir(), "accept.lock"))
			}
			timedOut := func(done <-chan error, within time.Duration) {
				t.Helper()
				select {
				case err := <-done:
					var ne net.Error
					if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
						t.Fatalf("Accept() = %v, want a timeout", err)
					}
				case <-time.After(within):
					t.Fatalf("Accept still waiting %v after its deadline", within)
				}
			}
			done := acceptAsync(l)
			time.Sleep(150 * time.Millisecond) // past a poll timeout: really waiting
			start := time.Now()
			if err := l.SetDeadline(time.Now()); err != nil {
				t.Fatal(err)
			}
			timedOut(done, 50*time.Millisecond)
			if d := time.Since(start); d > 50*time.Millisecond {
				t.Errorf("Accept returned %v after the deadline", d)
			}
			// Already past: at once, without waiting.
			timedOut(acceptAsync(l), 20*time.Millisecond)

			l.SetDeadline(time.Now().Add(200 * time.Millisecond))
			start = time.Now()
			timedOut(acceptAsync(l), time.Second)
			if d := time.Since(start); d < 190*time.Millisecond || d > 350*time.Millisecond {
				t.Errorf("a deadline 200ms ahead ended the wait after %v", d)
			}

			l.SetDeadline(time.Time{})
			dialAccepted(t, addr, acceptAsync(l), "the Listener with its deadline cleared")
			l.Close()
			if err := l.SetDeadline(time.Now()); !errors.Is(err, net.ErrClosed) {
				t.Errorf("SetDeadline after Close = %v, want net.ErrClosed", err)
			}
		})
	}
}

// TestQueueDepth: a Listener says how many connections wait in its
// socket's accept queue (the event model's burst rule reads it).
func TestQueueDepth(t *testing.T) {
	f, addr := socket(t)
	l := listenWakeOne(t, f)
	queuetest.Check(t, l, addr)
}
