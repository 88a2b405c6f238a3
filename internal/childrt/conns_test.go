package childrt

import (
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/scoreboard"
)

// testSlotConn is a slotConn over one end of a loopback TCP pair, with
// limits, accepted at now.
func testSlotConn(t *testing.T, lim connLimits, now time.Time) *slotConn {
	t.Helper()
	server, _ := tcpPair(t)
	sc := &slotConn{Conn: server, g: &gate{limits: lim}, slot: -1}
	sc.accepted(now)
	return sc
}

// TestHeaderBoundClampsDeadlines: while a header is pending, no read
// deadline asked for (net/http's own header timeout, started late, or none)
// goes past read_header from the accept; once the header is in, the one
// asked for holds; after a response the next header's bound is the longer
// of idle and read_header from its end.
func TestHeaderBoundClampsDeadlines(t *testing.T) {
	now := time.Now()
	lim := connLimits{readHeader: 10 * time.Second, idle: 5 * time.Second}
	sc := testSlotConn(t, lim, now)
	late := now.Add(time.Hour)
	sc.SetReadDeadline(late)
	if want := now.Add(10 * time.Second); !sc.timing.set.Equal(want) {
		t.Fatalf("deadline %v, want the accept's bound %v", sc.timing.set, want)
	}
	sc.SetReadDeadline(time.Time{}) // no deadline at all
	if want := now.Add(10 * time.Second); !sc.timing.set.Equal(want) {
		t.Fatalf("no deadline asked: %v, want %v", sc.timing.set, want)
	}
	early := now.Add(time.Second)
	sc.SetReadDeadline(early)
	if !sc.timing.set.Equal(early) {
		t.Fatalf("an earlier deadline %v became %v", early, sc.timing.set)
	}
	sc.SetReadDeadline(late)
	sc.headerIn()
	if !sc.timing.set.Equal(late) || sc.timing.watch.Load() {
		t.Fatalf("header in: deadline %v (watching %v), want %v", sc.timing.set, sc.timing.watch.Load(), late)
	}
	end := now.Add(3 * time.Second)
	sc.responded(end)
	if want := end.Add(10 * time.Second); !sc.timing.set.Equal(want) {
		t.Fatalf("after a response: %v, want %v", sc.timing.set, want)
	}
	sc.timing.lim.idle = 30 * time.Second
	sc.responded(end)
	if want := end.Add(30 * time.Second); !sc.timing.set.Equal(want) {
		t.Fatalf("after a response, idle longer: %v, want %v", sc.timing.set, want)
	}
}

// TestMinRateBounds: past its grace (half of read_header), a header's bound moves with its
// bytes at min_rate from its first byte, never past the hard bound; a
// body's counts only the time spent waiting for it, and a zero deadline
// (net/http's background read, once the body is in) disarms it.
func TestMinRateBounds(t *testing.T) {
	now := time.Now()
	lim := connLimits{readHeader: 10 * time.Second, idle: 5 * time.Second, minRate: 500}
	sc := testSlotConn(t, lim, now)
	first := now.Add(2 * time.Second)
	sc.headerBytes(250, first)
	if got, want := sc.headerBound(), first.Add(5*time.Second+500*time.Millisecond); !got.Equal(want) {
		t.Fatalf("header bound after 250 bytes: %v, want %v", got, want)
	}
	sc.headerBytes(100000, first)
	if got, want := sc.headerBound(), now.Add(10*time.Second); !got.Equal(want) {
		t.Fatalf("header bound after many bytes: %v, want the hard bound %v", got, want)
	}
	sc.headerIn()
	sc.SetReadDeadline(now.Add(time.Minute)) // net/http's whole-request deadline
	sc.armBody()
	sc.timing.mu.Lock()
	sc.timing.bodyN, sc.timing.waited = 1000, 2500*time.Millisecond
	got := sc.timing.effective(now)
	sc.timing.mu.Unlock()
	// 1000 bytes allow 2 s past the 5 s grace; 2.5 s were spent waiting.
	if want := now.Add(5*time.Second + 2*time.Second - 2500*time.Millisecond); !got.Equal(want) {
		t.Fatalf("body bound %v, want %v", got, want)
	}
	sc.timing.mu.Lock()
	sc.timing.bodyN, sc.timing.waited = 1<<62, 0 // a body of exabytes earns decades, never a past deadline
	got = sc.timing.effective(now)
	sc.timing.mu.Unlock()
	if want := now.Add(time.Minute); !got.Equal(want) {
		t.Fatalf("huge body: bound %v, want the deadline asked for %v", got, want)
	}
	sc.SetReadDeadline(time.Time{})
	if sc.timing.body || sc.timing.watch.Load() || !sc.timing.set.IsZero() {
		t.Fatalf("a zero deadline left the body armed (%v) or a deadline set (%v)", sc.timing.body, sc.timing.set)
	}
}

// TestConnStatesCounted: a connection's moves are counted on its process
// slot, one state at a time, and closing ends them.
func TestConnStatesCounted(t *testing.T) {
	b, err := scoreboard.Create("test", 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := b.Proc(0)
	server, _ := tcpPair(t)
	sc := &slotConn{Conn: server, g: &gate{cap: newCapacity(1, 0, 0)}, slot: -1, proc: p}
	sc.accepted(time.Now())
	step := func(st connState, reading, writing, keepAlive int) {
		t.Helper()
		sc.setState(st)
		got := p.Snapshot()
		if got.ConnsReading != reading || got.ConnsWriting != writing || got.ConnsKeepAlive != keepAlive || got.ConnsClosing != 0 {
			t.Fatalf("after %d: %+v", st, got)
		}
	}
	step(connReading, 1, 0, 0)
	step(connServed, 0, 0, 0)
	step(connWriting, 0, 1, 0)
	step(connIdle, 0, 0, 1)
	step(connReading, 1, 0, 0)
	sc.Close()
	step(connIdle, 0, 0, 0) // closed stays closed
}

// TestGarbageLineHandedAtOnce: a request line the fast path would not
// answer goes to net/http as soon as its line end is in; a good one waits
// for the rest of its header.
func TestGarbageLineHandedAtOnce(t *testing.T) {
	for in, want := range map[string]int{
		"GARBAGE\r\n":                  parseHandoff,
		"GARBAGE":                      parseMore,
		"POST /a HTTP/1.1\r\nHost: x":  parseHandoff,
		"GET /a HTTP/1.1\r\nHost: x":   parseMore,
		"GET /a HTTP/1.1\r\n":          parseMore,
		"GET /a%20b HTTP/1.1\r\nHos":   parseHandoff,
		"GET /a HTTP/1.1\r\nHost: x\r": parseMore,
	} {
		var req fastRequest
		if got := parseFast([]byte(in), &req); got != want {
			t.Errorf("parseFast(%q) = %d, want %d", in, got, want)
		}
	}
}

// TestRependHoldsTheAccept: a request the fast path hands to net/http makes
// its connection pending again, so the event child does not accept another
// connection on the slot the request gave back, and net/http's reads before
// the request takes its slot do not end that; a closed connection is never
// pending.
func TestRependHoldsTheAccept(t *testing.T) {
	conn, _ := tcpPair(t)
	cp := newCapacity(1, 0, 0)
	sc := &slotConn{Conn: conn, g: &gate{cap: cp, model: ModelEvent}, slot: -1}
	cp.conns, cp.pending = 1, 1
	sc.pending.Store(true)
	s := &server{cap: cp, model: ModelEvent}
	slot := s.requestSlot(sc) // the fast path's
	if cp.pending != 0 {
		t.Fatalf("pending %d with the request in a slot", cp.pending)
	}
	sc.repend() // it declined: net/http takes the request over
	cp.give(slot)
	sc.settle() // net/http's background read
	sc.settle()
	if cp.pending != 1 || len(cp.free) != 1 {
		t.Fatalf("after the hand-off: pending %d, free %d; want 1 and 1 (no accept)", cp.pending, len(cp.free))
	}
	cp.give(s.requestSlot(sc)) // net/http's
	if cp.pending != 0 {
		t.Fatalf("pending %d once net/http's request had its slot", cp.pending)
	}
	sc.Close()
	sc.repend()
	if cp.pending != 0 || sc.pending.Load() {
		t.Fatalf("a closed connection is pending (%d)", cp.pending)
	}
}

// TestPendingWindow: a connection's first read keeps it pending for
// pendWindow at most (a silent client then holds no place in the accept's
// count), and a connection that stops pending sooner, as nearly every one
// does, stops the window's timer, which would otherwise run a goroutine for
// it 20 ms later.
func TestPendingWindow(t *testing.T) {
	conn, _ := tcpPair(t)
	cp := newCapacity(2, 0, 0)
	pending := func() int {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		return cp.pending
	}
	newConn := func() *slotConn {
		sc := &slotConn{Conn: conn, g: &gate{cap: cp, model: ModelEvent}, slot: -1}
		cp.mu.Lock()
		cp.conns++
		cp.pending++
		cp.mu.Unlock()
		sc.pending.Store(true)
		return sc
	}

	silent := newConn()
	silent.settle() // its first read, which waits
	if pending() != 1 {
		t.Fatalf("pending %d during the first read, want 1", pending())
	}
	deadline := time.Now().Add(pendWindow + 2*time.Second)
	for pending() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a silent connection still pending %v after its first read", pendWindow+2*time.Second)
		}
		time.Sleep(time.Millisecond)
	}

	served := newConn()
	served.settle()
	served.unpend() // its request took a slot
	if pending() != 0 {
		t.Fatalf("pending %d after unpend", pending())
	}
	if served.pendTimer.Load().Stop() {
		t.Fatal("the pending window's timer still runs after the connection stopped pending")
	}
}
