package childrt

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// keepAliveOn reads SO_KEEPALIVE of c's socket.
func keepAliveOn(t *testing.T, c net.Conn) bool {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	v := -1
	rc.Control(func(fd uintptr) { v, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE) })
	if err != nil {
		t.Fatal(err)
	}
	return v != 0
}

// acceptOne accepts one connection from ln, dialled here.
func acceptOne(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestNoKeepAliveProbes: connections accepted from an inherited listener
// (net.FileListener) go without TCP keep-alive probes once
// noKeepAliveProbes has been applied; without it they have them (Go's
// default), so a Go that moves the field fails here.
func TestNoKeepAliveProbes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	inherited, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer inherited.Close()
	if !keepAliveOn(t, acceptOne(t, inherited)) {
		t.Fatal("Go's default changed: an accepted connection has no keep-alive probes to turn off")
	}
	if !noKeepAliveProbes(inherited) {
		t.Fatal("noKeepAliveProbes found no ListenConfig in net.TCPListener")
	}
	if keepAliveOn(t, acceptOne(t, inherited)) {
		t.Fatal("keep-alive probes still on after noKeepAliveProbes")
	}
	if noKeepAliveProbes(nil) {
		t.Fatal("noKeepAliveProbes(nil) reported success")
	}
}
