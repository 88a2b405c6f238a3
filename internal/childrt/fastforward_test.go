package childrt

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// testForward answers /f itself, with the app's own Date; for /carry it
// declines with a carry (as if the request had reached the app); /none
// it declines before anything is sent. It records what it was offered.
type testForward struct {
	mu   sync.Mutex
	seen []string
}

func (f *testForward) ForwardFast(req *ForwardRequest) (ForwardAnswer, any, bool) {
	f.mu.Lock()
	f.seen = append(f.seen, fmt.Sprintf("%v %s %s host=%s client=%s hdr=%q", req.Head, req.Target, req.Proto, req.Host, req.Client, req.Header))
	f.mu.Unlock()
	switch string(req.Target) {
	case "/f":
		return ForwardAnswer{Status: 201, Header: []byte("HTTP/1.1 201 Created\r\nDate: Sun, 06 Dec 2026 10:00:00 GMT\r\nContent-Length: 3\r\nX-Path: fwd\r\n"),
			HasDate: true, Body: []byte("fwd")}, nil, true
	case "/carry":
		return ForwardAnswer{}, "carried " + string(req.Target), false
	}
	return ForwardAnswer{}, nil, false
}

// carryHandler is net/http's side: it names what FastCarried gave it.
var carryHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Path", "slow")
	fmt.Fprintf(w, "slow %s carry=%v", r.URL.Path, FastCarried(r))
})

func startForward(t *testing.T) (*testForward, string) {
	t.Helper()
	rt, addr, events, _ := modelRuntime(t, ModelEvent, 4)
	f := &testForward{}
	rt.Forward = f
	serveForTest(t, rt, events, carryHandler)
	return f, addr
}

// TestFastForward: the fast path sends a FastForwarder's answer as it is
// (its Date, its status), without net/http; a request it declines with a
// carry goes to net/http with that carry, which FastCarried gives to its
// first request only; one declined without goes to net/http with none.
func TestFastForward(t *testing.T) {
	f, addr := startForward(t)
	r, c := exchange(t, addr, "GET /f HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n", 1, "GET")
	if r[0].code != 201 || r[0].path != "fwd" || r[0].body != "fwd" || r[0].close ||
		r[0].hdr.Get("Date") != "Sun, 06 Dec 2026 10:00:00 GMT" || len(r[0].hdr.Values("Date")) != 1 {
		t.Fatalf("GET /f: %+v", r[0])
	}
	f.mu.Lock()
	if len(f.seen) != 1 || f.seen[0] != `false /f HTTP/1.1 host=h client=127.0.0.1 hdr="Host: h\r\nAccept: */*\r\n"` {
		t.Errorf("offered %q", f.seen)
	}
	f.mu.Unlock()
	// Declined with a carry: net/http's first request has it, the next
	// on the connection has none.
	io.WriteString(c, "GET /carry HTTP/1.1\r\nHost: h\r\n\r\nGET /carry HTTP/1.1\r\nHost: h\r\n\r\n")
	r = readReplies(t, c, bufio.NewReader(c), 2, "GET")
	if r[0].body != "slow /carry carry=carried /carry" || r[1].body != "slow /carry carry=<nil>" {
		t.Fatalf("carried: %+v", r)
	}
	r, _ = exchange(t, addr, "HEAD /none HTTP/1.0\r\n\r\n", 1, "HEAD")
	if r[0].path != "slow" || !strings.HasPrefix(r[0].hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("declined: %+v", r[0])
	}
}
