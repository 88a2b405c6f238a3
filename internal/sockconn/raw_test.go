package sockconn

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DialUnix connects to the unix socket at path as a child does, making the
// address first.
func DialUnix(path string) (*Conn, error) {
	a, err := NewUnixAddr(path)
	if err != nil {
		return nil, err
	}
	return a.Dial()
}

// unixServer listens on a unix socket at path and returns the listener;
// it accepts only when asked (accept).
func unixServer(t *testing.T, path string) *net.UnixListener {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.UnixListener)
}

func accept(t *testing.T, ln *net.UnixListener) net.Conn {
	t.Helper()
	ln.SetDeadline(time.Now().Add(5 * time.Second))
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// DialUnix connects to a unix socket, its data goes both ways, and its
// addresses and errors are net's (the proxy and net/http read them).
func TestDialUnix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.sock")
	ln := unixServer(t, path)
	c, err := DialUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := accept(t, ln)
	if ra, ok := c.RemoteAddr().(*net.UnixAddr); !ok || ra.Name != path || ra.Net != "unix" {
		t.Errorf("RemoteAddr = %#v, want the socket's path", c.RemoteAddr())
	}
	if c.LocalAddr() != nil {
		t.Errorf("LocalAddr = %v, want none (an unnamed socket)", c.LocalAddr())
	}
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 18)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "GET / HTTP/1.1\r\n\r\n" {
		t.Fatalf("the app read %q, %v", buf, err)
	}
	// A write larger than the socket's buffer waits for room.
	big := []byte(strings.Repeat("x", 4<<20))
	go s.Write(big)
	got := make([]byte, len(big))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != string(big) {
		t.Fatalf("read %d bytes of %d: %v", len(got), len(big), err)
	}
	s.Close()
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("read after the app closed: %d, %v; want EOF", n, err)
	}
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Errorf("an empty read: %d, %v", n, err)
	}

	// In the abstract namespace, as net's.
	name := "@phased-sockconn-test-" + strconv.Itoa(os.Getpid())
	aln := unixServer(t, name)
	ac, err := DialUnix(name)
	if err != nil {
		t.Fatalf("dial %s: %v", name, err)
	}
	defer ac.Close()
	as := accept(t, aln)
	ac.Write([]byte("hi"))
	if _, err := io.ReadFull(as, buf[:2]); err != nil || string(buf[:2]) != "hi" {
		t.Fatalf("abstract: the app read %q, %v", buf[:2], err)
	}
}

func TestDialUnixErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.sock")
	_, err := DialUnix(missing)
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" || oe.Net != "unix" || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("dial a missing socket: %#v, want net's *net.OpError of dial with ENOENT", err)
	}
	if !strings.Contains(err.Error(), missing) {
		t.Errorf("error %q does not name the socket", err)
	}
	// A socket nobody listens on any more.
	path := filepath.Join(dir, "gone.sock")
	ln := unixServer(t, path)
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := DialUnix(path); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial a closed socket: %v, want ECONNREFUSED", err)
	}
	if _, err := DialUnix(strings.Repeat("x", 200)); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("dial a path too long: %v, want EINVAL", err)
	}
	if _, err := DialUnix(""); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("dial an empty path: %v, want EINVAL", err)
	}
}

// A DialUnix Conn's deadlines and Close end a read that waits, with
// net's errors, and reads and writes may run at once.
func TestDialUnixDeadlinesCloseAndConcurrency(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.sock")
	ln := unixServer(t, path)
	c, err := DialUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	s := accept(t, ln)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	var oe *net.OpError
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.As(err, &oe) || oe.Net != "unix" || oe.Op != "read" {
		t.Fatalf("read past the deadline: %v, want a unix read timeout", err)
	}
	c.SetReadDeadline(time.Time{})

	// One goroutine echoes what the app sends while another writes.
	go io.Copy(s, s)
	var wg sync.WaitGroup
	const n = 64 << 10
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range n / 1024 {
			if _, err := c.Write(make([]byte, 1024)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	if _, err := io.ReadFull(c, make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	done := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 1)); done <- err }()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("read ended by Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting read")
	}
}

// CloseSoon closes the connection a little later, a batch at a time:
// every peer sees its end, and a Close after it is harmless.
func TestCloseSoon(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.sock")
	ln := unixServer(t, path)
	const conns = closeBatch + 20 // one full batch closed at once, and a timed one
	peers := make([]net.Conn, conns)
	for i := range peers {
		c, err := DialUnix(path)
		if err != nil {
			t.Fatal(err)
		}
		peers[i] = accept(t, ln)
		c.CloseSoon()
		if i == 0 {
			c.CloseSoon() // twice: once
			if !c.closed.Load() {
				t.Fatal("not closed after CloseSoon")
			}
		}
		if i == conns-1 {
			if err := c.Close(); err != nil { // closes at once; the batch's close then finds it closed
				t.Errorf("Close after CloseSoon: %v", err)
			}
		}
	}
	start := time.Now()
	for i, p := range peers {
		p.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := p.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("peer %d: %d, %v; want EOF", i, n, err)
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the peers saw their ends after %v", took)
	}
}

// An Exchange writes a request, waits for the answer however it comes (in
// parts, after a while), reads to the peer's end, and closes; a write
// larger than the socket's buffer waits for room.
func TestExchange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.sock")
	ln := unixServer(t, path)
	a, err := NewUnixAddr(path)
	if err != nil {
		t.Fatal(err)
	}
	x, err := a.Exchange()
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	s := accept(t, ln)
	go func() {
		buf := make([]byte, 4)
		io.ReadFull(s, buf)
		time.Sleep(30 * time.Millisecond)
		s.Write([]byte("HTTP/1.1 200 OK\r\n"))
		time.Sleep(30 * time.Millisecond)
		s.Write([]byte("\r\nhello"))
		s.Close()
	}()
	if n, err := x.Write([]byte("ping")); n != 4 || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	got, err := io.ReadAll(x)
	if err != nil || string(got) != "HTTP/1.1 200 OK\r\n\r\nhello" {
		t.Fatalf("read %q, %v", got, err)
	}
	x.Close()
	x.Close() // twice: once

	x2, err := a.Exchange()
	if err != nil {
		t.Fatal(err)
	}
	defer x2.Close()
	s2 := accept(t, ln)
	big := []byte(strings.Repeat("y", 4<<20))
	done := make(chan []byte)
	go func() {
		time.Sleep(30 * time.Millisecond) // the write fills the socket first
		b, _ := io.ReadAll(io.LimitReader(s2, int64(len(big))))
		done <- b
	}()
	if n, err := x2.Write(big); n != len(big) || err != nil {
		t.Fatalf("big write: %d, %v", n, err)
	}
	if b := <-done; len(b) != len(big) {
		t.Fatalf("the peer read %d bytes of %d", len(b), len(big))
	}

	if _, err := (&UnixAddr{net: &net.UnixAddr{Name: "x"}}).Exchange(); err == nil {
		t.Error("an exchange with an empty address")
	}
	missing, _ := NewUnixAddr(filepath.Join(t.TempDir(), "none.sock"))
	if _, err := missing.Exchange(); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("exchange with a missing socket: %v, want ENOENT", err)
	}
}

// An exchange handed over as a Conn goes on reading where it stopped,
// with deadlines, in the netpoller.
func TestExchangeConn(t *testing.T) {
	x, s := exchangeWithPeer(t)
	x.Write([]byte("q"))
	s.Write([]byte("first"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(x, buf); err != nil || string(buf) != "first" {
		t.Fatalf("read %q, %v", buf, err)
	}
	c, err := x.Conn()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ra, want := c.RemoteAddr().String(), s.LocalAddr().String(); ra != want {
		t.Errorf("RemoteAddr %s, want %s", ra, want)
	}
	s.Write([]byte("then"))
	if _, err := io.ReadFull(c, buf[:4]); err != nil || string(buf[:4]) != "then" {
		t.Fatalf("read on the Conn %q, %v", buf[:4], err)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past the deadline: %v", err)
	}
	x.Close() // handed over: nothing to close
	if _, err := c.Write([]byte("still open")); err != nil {
		t.Errorf("the Conn after the Exchange's Close: %v", err)
	}
}

// Many exchanges at once, on many goroutines, each get their own answer:
// the poller tells each its own socket's word.
func TestExchangesAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.sock")
	ln := unixServer(t, path)
	go func() {
		for {
			s, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer s.Close()
				buf := make([]byte, 16)
				n, _ := s.Read(buf)
				time.Sleep(time.Duration(buf[0]%5) * time.Millisecond)
				s.Write(buf[:n])
			}()
		}
	}()
	a, _ := NewUnixAddr(path)
	var wg sync.WaitGroup
	for g := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				x, err := a.Exchange()
				if err != nil {
					t.Error(err)
					return
				}
				want := strconv.Itoa(g*1000 + i)
				x.Write([]byte(want))
				got, err := io.ReadAll(x)
				x.Close()
				if err != nil || string(got) != want {
					t.Errorf("exchange %s: got %q, %v", want, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestExchangeReadDeadline: a read past the exchange's deadline fails
// with a timeout (within the poller's sweep), whether it was waiting or
// comes after; an answer within it is read; the zero time lifts it.
func TestExchangeReadDeadline(t *testing.T) {
	x, s := exchangeWithPeer(t)
	defer x.Close()
	defer s.Close()
	x.Write([]byte("ping"))
	x.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	start := time.Now()
	n, err := x.Read(make([]byte, 8))
	took := time.Since(start)
	var ne net.Error
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read of a silent peer: %d, %v; want a timeout", n, err)
	}
	if took < 200*time.Millisecond || took > 200*time.Millisecond+3*sweepEvery {
		t.Fatalf("the timeout came after %v, want 200ms plus at most a sweep or two", took)
	}
	if _, err := x.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a read after the deadline: %v, want a timeout", err)
	}
	x.SetReadDeadline(time.Time{})
	go func() {
		time.Sleep(3 * sweepEvery / 2) // past a sweep: no deadline now
		s.Write([]byte("pong"))
	}()
	buf := make([]byte, 8)
	if n, err := x.Read(buf); err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("read without a deadline: %q, %v", buf[:n], err)
	}
	x.SetReadDeadline(time.Now().Add(time.Minute))
	x.Write([]byte("ping"))
	go s.Write([]byte("pong"))
	if n, err := x.Read(buf); err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("read within the deadline: %q, %v", buf[:n], err)
	}
	// No exchange armed: the sweep stops, and wakes the process no more.
	x.Close()
	for deadline := time.Now().Add(5 * sweepEvery); ; time.Sleep(10 * time.Millisecond) {
		thePoller.mu.Lock()
		sweeping := thePoller.sweeping
		thePoller.mu.Unlock()
		if !sweeping {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sweep still runs with no exchange armed")
		}
	}
}

// exchangeWithPeer is an exchange with a new unix server's socket, and the
// server's end of it.
func exchangeWithPeer(t *testing.T) (*Exchange, net.Conn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.sock")
	ln := unixServer(t, path)
	a, _ := NewUnixAddr(path)
	x, err := a.Exchange()
	if err != nil {
		t.Fatal(err)
	}
	return x, accept(t, ln)
}
