package listen

import (
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDeferAccept: accept_filter's socket option is set, rounded up to
// whole seconds, and turned off again.
func TestDeferAccept(t *testing.T) {
	l, err := Open("127.0.0.1:0", 16)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	get := func() int {
		t.Helper()
		raw, err := l.File.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		v := -1
		raw.Control(func(fd uintptr) { v, err = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT) })
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := get(); v != 0 {
		t.Fatalf("a new socket defers its accepts: %d", v)
	}
	if err := l.DeferAccept(1500 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// Linux reports the seconds its retransmissions round the value up to.
	if v := get(); v < 2 {
		t.Fatalf("TCP_DEFER_ACCEPT %d after DeferAccept(1.5s), want at least 2", v)
	}
	if err := l.DeferAccept(0); err != nil {
		t.Fatal(err)
	}
	if v := get(); v != 0 {
		t.Fatalf("TCP_DEFER_ACCEPT %d after DeferAccept(0)", v)
	}
}

func TestOpenAcceptsConnections(t *testing.T) {
	l, err := Open("127.0.0.1:0", 16)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Bound.Port == 0 {
		t.Fatal("kernel did not assign a port")
	}
	nl, err := net.FileListener(l.File)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	c, err := net.Dial("tcp", l.Bound.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := nl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func TestOpenErrorsNameTheAddress(t *testing.T) {
	l, err := Open("127.0.0.1:0", 16)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Bound.String()
	tests := []struct{ addr, want string }{
		{addr, "address already in use"},
		{"127.0.0.1:notaport", "127.0.0.1:notaport"},
		{"192.0.2.1:0", "address not available"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			_, err := Open(tt.addr, 16)
			if err == nil || !strings.Contains(err.Error(), tt.addr) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open(%q) = %v, want an error naming the address and %q", tt.addr, err, tt.want)
			}
		})
	}
}

func TestSetUpdateKeepsSockets(t *testing.T) {
	var s Set
	a, err := Open("127.0.0.1:0", 16)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	b, err := Open("127.0.0.1:0", 16)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	addrA, addrB := a.Bound.String(), b.Bound.String()
	if _, err := s.Update([]string{addrA}, 16); err != nil {
		t.Fatal(err)
	}
	first := s.List()[0].File
	removed, err := s.Update([]string{addrA, addrB}, 16)
	if err != nil || len(removed) != 0 {
		t.Fatalf("Update = %v, %v", removed, err)
	}
	if s.List()[0].File != first {
		t.Fatal("kept address got a new socket")
	}
	removed, err = s.Update([]string{addrB}, 16)
	if err != nil || len(removed) != 1 || removed[0].Addr != addrA {
		t.Fatalf("Update = %v, %v; want %s removed", removed, err, addrA)
	}
	removed[0].Close()
	// A failing update changes nothing.
	if _, err := s.Update([]string{addrB, addrB + "x"}, 16); err == nil {
		t.Fatal("bad address accepted")
	}
	if got := s.Addrs(); len(got) != 1 || got[0] != addrB {
		t.Fatalf("after failed update: %v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestQueueDepth(t *testing.T) {
	l, err := Open("127.0.0.1:0", 64)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	depth, limit, err := l.QueueDepth()
	if err != nil || depth != 0 || limit != 64 {
		t.Fatalf("QueueDepth = %d, %d, %v; want 0, 64", depth, limit, err)
	}
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", l.Bound.String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if depth, _, err = l.QueueDepth(); err != nil || depth != 3 {
		t.Fatalf("QueueDepth = %d, %v; want 3 waiting connections", depth, err)
	}
}
