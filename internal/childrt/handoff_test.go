package childrt

import (
	"net"
	"net/http"
	"testing"
)

// TestHandoffNeverUntracked: a connection the fast path hands to net/http
// is tracked all along, as the fast path's until net/http's listener has
// it and as net/http's from then on, so that a drain that counts
// connections cannot find none and let the child exit with the request
// unread. The fast path used to untrack its connection once give
// returned, before net/http tracked the one it accepted.
func TestHandoffNeverUntracked(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	s := &server{handoff: newHandoff(a.LocalAddr())}
	ln := handoffListener{s}
	defer ln.Close()
	s.track(a, http.StateNew) // the fast path's accept
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	replay := replayed(a, []byte("GET / HTTP/1.1\r\n"))
	if !s.handoff.give(replay, a) {
		t.Fatal("the hand-off was refused")
	}
	c := <-accepted
	if n := s.count(); n != 1 {
		t.Fatalf("%d connections tracked once net/http's listener has the handed one, want 1", n)
	}
	if _, ok := s.conns.Load(c); !ok {
		t.Fatalf("the connection net/http got (%T) is not the one tracked", c)
	}
	if _, ok := s.conns.Load(a); ok {
		t.Fatal("the fast path's connection is still tracked beside net/http's")
	}
}
