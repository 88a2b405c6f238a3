package sockconn

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/phasedhq/phased/internal/sockconn/queuetest"
)

// listen returns a Listener over a fresh listening socket on addr, and
// the address to dial.
func listen(t *testing.T, addr string) (*Listener, string) {
	t.Helper()
	tl, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	defer tl.Close()
	f, err := tl.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := Listen(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, tl.Addr().String()
}

// pair returns an accepted Conn and the client's side of it.
func pair(t *testing.T, l *Listener, addr string) (*Conn, net.Conn) {
	t.Helper()
	client, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*Conn), client
}

func sockopt(t *testing.T, c syscall.Conn, level, opt int) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	v, gerr := 0, error(nil)
	if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), level, opt) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// An accepted connection has net's per-connection options without a
// system call of its own: they come from the listening socket.
func TestAcceptedConnectionHasNetsOptions(t *testing.T) {
	l, addr := listen(t, "127.0.0.1:0")
	c, _ := pair(t, l, addr)
	for _, o := range []struct {
		name       string
		level, opt int
		want       int
	}{
		{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, keepAliveIdle},
		{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, keepAliveInterval},
		{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, keepAliveCount},
	} {
		if got := sockopt(t, c, o.level, o.opt); got != o.want {
			t.Errorf("%s on the accepted socket = %d, want %d", o.name, got, o.want)
		}
	}
	if got := sockopt(t, c, unix.SOL_SOCKET, unix.SO_TYPE); got != unix.SOCK_STREAM {
		t.Errorf("SO_TYPE = %d", got)
	}
}

func TestAddressesAndData(t *testing.T) {
	l, addr := listen(t, "127.0.0.1:0")
	c, client := pair(t, l, addr)
	if got, want := c.RemoteAddr().String(), client.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr = %s, want %s", got, want)
	}
	if got := c.LocalAddr().String(); got != addr {
		t.Errorf("LocalAddr = %s, want %s", got, addr)
	}
	if _, ok := c.RemoteAddr().(*net.TCPAddr); !ok {
		t.Errorf("RemoteAddr is a %T, want *net.TCPAddr", c.RemoteAddr())
	}
	if l.Addr().String() != addr {
		t.Errorf("Listener.Addr = %s, want %s", l.Addr(), addr)
	}
	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if _, err := c.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("client read %q, %v", buf, err)
	}
	// CloseWrite sends a FIN: the client reads EOF, and can still write.
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := client.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("client read after CloseWrite: %d, %v; want EOF", n, err)
	}
	if _, err := client.Write([]byte("more")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "more" {
		t.Fatalf("read after CloseWrite %q, %v", buf, err)
	}
	client.Close()
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("read after the client closed: %d, %v; want EOF", n, err)
	}
}

// On a wildcard listener the local address is the one the client dialled.
func TestWildcardLocalAddr(t *testing.T) {
	l, addr := listen(t, "0.0.0.0:0")
	_, port, _ := net.SplitHostPort(addr)
	c, _ := pair(t, l, "127.0.0.1:"+port)
	if got := c.LocalAddr().String(); got != "127.0.0.1:"+port {
		t.Errorf("LocalAddr = %s, want 127.0.0.1:%s", got, port)
	}
}

func TestIPv6(t *testing.T) {
	l, addr := listen(t, "[::1]:0")
	c, client := pair(t, l, addr)
	if got, want := c.RemoteAddr().String(), client.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr = %s, want %s", got, want)
	}
	if got := c.LocalAddr().String(); got != addr {
		t.Errorf("LocalAddr = %s, want %s", got, addr)
	}
}

// The errors are net's: net/http tells a timeout, a closed connection or a
// reset from a bad request by their type.
func TestErrorsAreNets(t *testing.T) {
	l, addr := listen(t, "127.0.0.1:0")
	c, client := pair(t, l, addr)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("read past the deadline: %#v, want a *net.OpError of read", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past the deadline: %v is not a timeout", err)
	}
	c.SetReadDeadline(time.Time{})

	// A reset by the peer.
	client.(*net.TCPConn).SetLinger(0)
	client.Close()
	time.Sleep(20 * time.Millisecond)
	_, err = c.Read(make([]byte, 1))
	if !errors.As(err, &oe) || oe.Op != "read" || !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read after a reset: %v, want a *net.OpError of read with ECONNRESET", err)
	}

	c.Close()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after Close: %v, want net.ErrClosed", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
	rc, _ := c.SyscallConn()
	if err := rc.Read(func(uintptr) bool { return true }); !errors.Is(err, net.ErrClosed) {
		t.Errorf("a raw read after Close: %v, want net.ErrClosed", err)
	}
}

func TestListenerDeadlineAndClose(t *testing.T) {
	l, _ := listen(t, "127.0.0.1:0")
	l.SetDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := l.Accept()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Accept past the deadline: %v, want a timeout", err)
	}
	l.SetDeadline(time.Time{})
	done := make(chan error, 1)
	go func() { _, err := l.Accept(); done <- err }()
	time.Sleep(20 * time.Millisecond)
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting Accept")
	}
}

func TestListenRefusesWhatIsNotATCPListener(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	ul, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	f, err := ul.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Listen(f); !errors.Is(err, ErrNotTCP) {
		t.Errorf("Listen on a unix socket: %v", err)
	}
	// A TCP socket that does not listen.
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	cc, err := net.Dial("tcp", tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cf, err := cc.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	if _, err := Listen(cf); err == nil || !strings.Contains(err.Error(), "not listening") {
		t.Errorf("Listen on a connected socket: %v", err)
	}
}

// net/http on a Listener: requests are served, and a client whose header
// does not come in time is closed without a "400 Bad Request" (which
// net/http writes for a read error it does not know as a network one).
func TestServesNetHTTP(t *testing.T) {
	l, addr := listen(t, "127.0.0.1:0")
	srv := &http.Server{
		ReadHeaderTimeout: 100 * time.Millisecond,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(r.RemoteAddr))
		}),
	}
	go srv.Serve(l)
	defer srv.Close()
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "127.0.0.1:") {
		t.Errorf("GET: %d %q", resp.StatusCode, body)
	}

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n")) // never finished
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(bufio.NewReader(c))
	if err != nil {
		t.Fatalf("reading the cut connection: %v", err)
	}
	if len(got) != 0 {
		t.Errorf("a header that timed out was answered %q; want the connection closed", got)
	}
}

// TestQueueDepth: a Listener says how many connections wait in its accept
// queue (the event child's burst and balance rules read it), and fails
// once closed.
func TestQueueDepth(t *testing.T) {
	l, addr := listen(t, "127.0.0.1:0")
	queuetest.Check(t, l, addr)
}

// SyscallConn is asked several times a connection (raw reads and writes,
// SIOCINQ): it allocates nothing.
func TestSyscallConnAllocatesNothing(t *testing.T) {
	l, addr := listen(t, "127.0.0.1:0")
	c, _ := pair(t, l, addr)
	if n := testing.AllocsPerRun(100, func() {
		rc, _ := c.SyscallConn()
		_ = rc.Control(func(uintptr) {})
	}); n != 0 {
		t.Errorf("SyscallConn and Control: %.0f allocations, want 0", n)
	}
}
