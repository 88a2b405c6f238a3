package childrt

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/scoreboard"
	"github.com/phasedhq/phased/internal/sockconn"
)

// queueListener is a TCP listener that tells its accept queue's depth, as
// a child's listeners do.
type queueListener struct{ *net.TCPListener }

func (l queueListener) QueueDepth() (int, int, error) {
	rc, err := l.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	return sockconn.RawQueueDepth(rc)
}

// closedWithin reports whether the server closed c (EOF or a reset) within
// d; false if c is still open then.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// hangUp closes the client's side of each connection and waits until the
// server has closed its own: a connection the server still held would
// count, idle, in the reclaimer's next pass (under a loaded machine's
// delays, it did).
func hangUp(t *testing.T, conns ...net.Conn) {
	t.Helper()
	for _, c := range conns {
		c.(*net.TCPConn).CloseWrite()
		if !closedWithin(c, 5*time.Second) {
			t.Fatal("the server did not close a connection its client hung up")
		}
		c.Close()
	}
}

// TestWorkerReclaimsSilentConnections: a worker child whose two slots are
// held while a client waits in the accept queue closes the connections
// that have sent nothing since the accept for a second, and serves the
// client; an idle keep-alive connection goes too only once the master has
// said the server is at its limit. A connection that has sent part of a
// header is not closed so, nor a silent one while nobody waits; the
// counter and the error log say what was closed.
func TestWorkerReclaimsSilentConnections(t *testing.T) {
	rt, addr, events, _ := modelRuntime(t, ModelWorker, 2)
	rt.listeners[0] = queueListener{rt.listeners[0].(*net.TCPListener)}
	var logs syncBuffer
	rt.Log = slog.New(slog.NewTextHandler(&logs, nil))
	counters, err := scoreboard.CreateCounters()
	if err != nil {
		t.Fatal(err)
	}
	rt.counters = counters // never closed: see modelRuntime
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	serveForTest(t, rt, events, ok)
	reclaimed := func(want uint64) {
		t.Helper()
		if n := counters.Get(scoreboard.ConnectionsReclaimed); n != want {
			t.Fatalf("ConnectionsReclaimed %d, want %d", n, want)
		}
	}

	// An idle keep-alive connection and a silent one: the silent one goes.
	kept, kr := dial(t, addr)
	send(t, kept)
	if !answered(kept, kr, 2*time.Second) {
		t.Fatal("keep-alive connection not served")
	}
	quiet, _ := dial(t, addr)
	waiting, wr := dial(t, addr)
	send(t, waiting)
	start := time.Now()
	if !answered(waiting, wr, 5*time.Second) {
		t.Fatalf("a queued request behind an idle keep-alive and a silent connection not served in %v", time.Since(start))
	}
	if took := time.Since(start); took < reclaimSilence-100*time.Millisecond {
		t.Fatalf("queued request served after %v, before the held connections were silent for %v", took, reclaimSilence)
	}
	if !closedWithin(quiet, time.Second) {
		t.Fatal("the silent connection was not closed")
	}
	if closedWithin(kept, 100*time.Millisecond) {
		t.Fatal("an idle keep-alive connection was closed while the server could still grow")
	}
	reclaimed(1)
	if !strings.Contains(logs.String(), "closed connections that had sent nothing for a second") || !strings.Contains(logs.String(), "connections=1") {
		t.Fatalf("error log:\n%s", logs.String())
	}

	// Both slots held by keep-alive connections; once the master counts a
	// maintenance tick at the server's limit, idle ones go too.
	next, nr := dial(t, addr)
	send(t, next)
	time.Sleep(2 * reclaimPoll)
	counters.Add(scoreboard.MaxChildrenReached, 1)
	if !answered(next, nr, 5*time.Second) {
		t.Fatal("a queued request behind idle keep-alive connections at the limit not served")
	}
	if !closedWithin(kept, time.Second) {
		t.Fatal("the idle keep-alive connection was not closed at the limit")
	}
	hangUp(t, waiting, next)

	// One slot held by a connection sending its header slowly, one by a
	// silent one: only the silent one goes for a queued client.
	before := counters.Get(scoreboard.ConnectionsReclaimed)
	slow, _ := dial(t, addr)
	fmt.Fprintf(slow, "GET /x HT")
	// Its bytes read before the queue forms: on a loaded machine the
	// child could otherwise meet it still silent (ConnectionsReclaimed 3).
	time.Sleep(2 * reclaimPoll)
	quiet, _ = dial(t, addr)
	waiting, wr = dial(t, addr)
	send(t, waiting)
	if !answered(waiting, wr, 5*time.Second) {
		t.Fatal("a queued request behind a slow and a silent connection not served")
	}
	if !closedWithin(quiet, time.Second) {
		t.Fatal("the silent connection was not closed")
	}
	if closedWithin(slow, 100*time.Millisecond) {
		t.Fatal("a connection that had sent part of its header was closed")
	}
	reclaimed(before + 1)
	hangUp(t, waiting)

	// Every slot held, nobody waiting: a silent connection stays.
	quiet, _ = dial(t, addr)
	if closedWithin(quiet, reclaimSilence+4*reclaimPoll) {
		t.Fatal("a silent connection closed while nobody waited to be accepted")
	}
	fmt.Fprintf(slow, "TP/1.1\r\nHost: x\r\n\r\n")
	send(t, quiet)
	for _, c := range []net.Conn{slow, quiet} {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.ReadAtLeast(c, make([]byte, 12), 12); err != nil {
			t.Fatalf("held connection not served at last: %v", err)
		}
	}
	reclaimed(before + 1)
}
