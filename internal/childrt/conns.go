package childrt

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phasedhq/phased/internal/scoreboard"
	"golang.org/x/sys/unix"
)

// A connection's state, for the scoreboard's connection counts
// (ProcSlot.AddConnState) and so for mod_status's asynchronous connection
// counts on the status page: reading its request's header (no slot in the
// event model), served by a worker, writing a response after its worker
// let go (the fast path in the event model), idle between keep-alive
// requests, closing.
type connState int32

const (
	connReading connState = iota
	connServed
	connWriting
	connIdle
	connClosing
	connClosed
)

// boardStates are the scoreboard states the connection states count as;
// Dead is counted nowhere.
var boardStates = [...]scoreboard.State{
	connReading: scoreboard.Reading, connServed: scoreboard.Dead, connWriting: scoreboard.Writing,
	connIdle: scoreboard.KeepAlive, connClosing: scoreboard.Closing, connClosed: scoreboard.Dead,
}

// setState moves c to st, moving its count on the process slot; a closed
// connection stays closed.
func (c *slotConn) setState(st connState) {
	for {
		old := connState(c.cstate.Load())
		if old == st || old == connClosed {
			return
		}
		if c.cstate.CompareAndSwap(int32(old), int32(st)) {
			if c.proc != nil {
				c.proc.AddConnState(boardStates[old], -1)
				c.proc.AddConnState(boardStates[st], 1)
			}
			return
		}
	}
}

// grace is how long a request's header, from its first byte, or its body
// may take before the minimum receive rate applies: half of read_header (at
// least a second). After it, what arrived must average at least min_rate
// bytes a second of the time spent waiting for it. A client that pauses
// within it (a person typing, a slow link) is not cut, as mod_reqtimeout
// allows its initial timeout whatever the rate.
func (l *connLimits) grace() time.Duration { return max(l.readHeader/2, time.Second) }

// connLimits are the bounds no client can stretch: the request-header
// timeout, counted from the accept (first request) or from the end of the
// previous response (keep-alive, where the idle timeout is the longer bound
// when it is longer), and the minimum receive rate of headers and bodies
// (mod_reqtimeout's MinRate), in bytes a second; 0 turns it off.
type connLimits struct {
	readHeader, idle time.Duration
	minRate          int64
	// noClamp: the connection speaks HTTP/2 (h2 negotiated by TLS, or
	// h2c's preface on a plain listener: leaveBounds), whose deadlines the
	// HTTP/2 server (internal/h2) keeps for itself; the bounds are left to
	// it.
	noClamp bool
}

// connTiming is a connection's header and body bounds, kept under the
// layers above it (the fast path, net/http, TLS): a read deadline they ask
// for is never later than the bound.
type connTiming struct {
	mu     sync.Mutex
	lim    connLimits
	watch  atomic.Bool // a header is pending or a body armed: Read checks
	want   time.Time   // the read deadline asked for (SetReadDeadline)
	set    time.Time   // the read deadline on the socket
	hdrBy  time.Time   // the pending header's hard bound; zero: none pending
	since  time.Time   // when the pending header's wait began (the accept, a response's end)
	kept   bool        // the pending header is a keep-alive connection's next request
	first  time.Time   // when the pending header's first byte came; zero: none yet
	hdrN   int64       // the pending header's bytes so far
	body   bool        // a request body is being read: the minimum rate applies
	bodyN  int64
	waited time.Duration // time spent waiting for the body's bytes
}

// rateBound is when n bytes, the first at start, fall below the minimum rate
// given waited time spent waiting for them.
func (l *connLimits) rateBound(start time.Time, n int64, waited time.Duration) time.Time {
	secs := min(n/l.minRate, 1<<30) // no overflow, whatever a body's size
	earned := time.Duration(secs)*time.Second + time.Duration(n%l.minRate)*time.Second/time.Duration(l.minRate)
	return start.Add(l.grace() + earned - waited)
}

// bound is the deadline the pending header or the armed body must meet at
// now; zero when none applies. Under mu.
func (t *connTiming) bound(now time.Time) time.Time {
	switch {
	case !t.hdrBy.IsZero():
		by := t.hdrBy
		if t.lim.minRate > 0 && !t.first.IsZero() {
			if r := t.lim.rateBound(t.first, t.hdrN, 0); r.Before(by) {
				by = r
			}
		}
		return by
	case t.body && t.lim.minRate > 0:
		return t.lim.rateBound(now, t.bodyN, t.waited)
	}
	return time.Time{}
}

// effective is want clamped by the bound at now. Under mu.
func (t *connTiming) effective(now time.Time) time.Time {
	if by := t.bound(now); !by.IsZero() && (t.want.IsZero() || by.Before(t.want)) {
		return by
	}
	return t.want
}

// apply sets the effective deadline on the socket if it changed. Under mu.
func (c *slotConn) apply(now time.Time) error {
	eff := c.timing.effective(now)
	if eff.Equal(c.timing.set) {
		return nil
	}
	c.timing.set = eff
	return c.Conn.SetReadDeadline(eff)
}

// SetReadDeadline records the deadline the layer above asks for and sets
// it, clamped by the pending header's bound. A zero deadline while a body
// is armed is net/http starting its background read once the body is all
// in: the body's rate no longer applies.
func (c *slotConn) SetReadDeadline(d time.Time) error {
	c.timing.mu.Lock()
	defer c.timing.mu.Unlock()
	c.timing.want = d
	if d.IsZero() && c.timing.body {
		c.timing.body = false
		c.timing.watch.Store(!c.timing.hdrBy.IsZero())
	}
	return c.apply(time.Now())
}

// SetDeadline sets both deadlines, the read one through SetReadDeadline.
func (c *slotConn) SetDeadline(d time.Time) error {
	if err := c.Conn.SetWriteDeadline(d); err != nil {
		return err
	}
	return c.SetReadDeadline(d)
}

// unpend ends c's pending: its first request has a slot, or it will not
// want one at once.
func (c *slotConn) unpend() {
	if c.pending.CompareAndSwap(true, false) {
		c.g.cap.unpend()
		if t := c.pendTimer.Load(); t != nil {
			t.Stop()
		}
	}
}

// repend makes c pending again until net/http's request takes a slot: the
// fast path gave back the slot of a request it hands over.
func (c *slotConn) repend() {
	if c.closed.Load() || !c.pending.CompareAndSwap(false, true) {
		return
	}
	// Its header is in: net/http's reads, the background one included,
	// do not mean a slow client.
	c.reads.Store(math.MinInt32)
	c.g.cap.mu.Lock()
	c.g.cap.pending++
	c.g.cap.mu.Unlock()
	if c.closed.Load() {
		c.unpend() // closed meanwhile: Close's unpend may have come first
	}
}

// pendWindow is how long a connection with nothing to read yet stays
// pending: a client's request follows its connect by less on any network
// (it sends it right after the handshake), even on a loaded machine, so a
// burst of ordinary clients is still shared among children; a silent client
// holds its place no longer. (A child of 25 slots still accepts 1,250 silent
// connections a second; clients that send a byte, as slowloris does, are
// not held back at all.)
const pendWindow = 20 * time.Millisecond

// settle is called before each read of a connection's own goroutine (the
// fast path's, net/http's): a pending connection stays pending through its
// first read, for at most pendWindow: a silent client, or one whose header
// does not come in one read, soon holds no place in the accept's count.
// The window's timer is stopped when the connection stops pending sooner
// (its request in, or closed), as nearly every one does: a timer left to
// fire would run a goroutine for each connection 20 ms after it, and keep
// waking the child's idle threads for them.
//
// It does not ask the socket whether bytes wait (one system call a
// connection, for a connection that reaches here nearly always after
// serveInline found none a moment before): a request that does wait is
// read at once and ends the pending well within the window.
func (c *slotConn) settle() {
	if !c.pending.Load() {
		return
	}
	switch n := c.reads.Add(1); {
	case n > 1:
		c.unpend()
	case n == 1:
		c.pendTimer.Store(time.AfterFunc(pendWindow, c.unpend))
		if !c.pending.Load() {
			// Unpended before the timer was stored: nothing stops it.
			c.pendTimer.Load().Stop()
		}
	}
}

// settleRead is settle for a read made before asking, that found bytes
// (serveInline's): the connection stays pending through it, as settle
// would have kept it, without settle's question to the socket.
func (c *slotConn) settleRead() {
	if c.pending.Load() && c.reads.Add(1) > 1 {
		c.unpend()
	}
}

// Read reads as the connection does; while a header is pending or a body
// armed, it counts the bytes and waits no longer than their bound.
func (c *slotConn) Read(p []byte) (int, error) {
	c.settle()
	if !c.timing.watch.Load() {
		return c.Conn.Read(p)
	}
	start := time.Now()
	c.timing.mu.Lock()
	err := c.apply(start)
	c.timing.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	now := time.Now()
	c.timing.mu.Lock()
	switch {
	case !c.timing.hdrBy.IsZero():
		c.headerBytesLocked(n, now)
	case c.timing.body:
		c.timing.bodyN += int64(n)
		c.timing.waited += now.Sub(start)
	}
	c.timing.mu.Unlock()
	return n, err
}

// accepted starts the first request's header bound at now, the accept.
func (c *slotConn) accepted(now time.Time) {
	c.timing.lim = c.g.limits
	if c.proc != nil {
		c.proc.AddConnState(scoreboard.Reading, 1)
	}
	c.startHeader(now, c.timing.lim.readHeader, false)
}

// responded starts the next request's header bound at now, the end of a
// response: the longer of the idle and header timeouts. The connection is
// idle until a byte comes.
func (c *slotConn) responded(now time.Time) {
	c.setState(connIdle)
	c.startHeader(now, max(c.timing.lim.idle, c.timing.lim.readHeader), true)
}

func (c *slotConn) startHeader(now time.Time, d time.Duration, kept bool) {
	if d <= 0 {
		return
	}
	c.timing.mu.Lock()
	defer c.timing.mu.Unlock()
	if c.timing.lim.noClamp {
		return
	}
	c.timing.hdrBy, c.timing.since, c.timing.first, c.timing.hdrN = now.Add(d), now, time.Time{}, 0
	c.timing.kept = kept
	c.timing.body = false
	c.timing.watch.Store(true)
	c.apply(now)
}

// headerIn ends the pending header's bound: the request is in, and a worker
// serves it.
func (c *slotConn) headerIn() {
	c.setState(connServed)
	if !c.timing.watch.Load() {
		return
	}
	c.timing.mu.Lock()
	defer c.timing.mu.Unlock()
	c.timing.hdrBy = time.Time{}
	c.timing.watch.Store(c.timing.body)
	c.apply(time.Now())
}

// headerBytes counts n bytes of the pending header, read at now by the
// fast path (which reads the socket itself).
func (c *slotConn) headerBytes(n int, now time.Time) {
	c.timing.mu.Lock()
	c.headerBytesLocked(n, now)
	c.timing.mu.Unlock()
}

func (c *slotConn) headerBytesLocked(n int, now time.Time) {
	if n <= 0 || c.timing.hdrBy.IsZero() {
		return
	}
	if c.timing.first.IsZero() {
		c.timing.first = now
		c.setState(connReading) // from keep-alive
	}
	c.timing.hdrN += int64(n)
}

// headerBound is the pending header's deadline, zero if none.
func (c *slotConn) headerBound() time.Time {
	c.timing.mu.Lock()
	defer c.timing.mu.Unlock()
	if c.timing.hdrBy.IsZero() {
		return time.Time{}
	}
	return c.timing.bound(time.Now())
}

// leaveBounds drops c's header bound for good: the connection speaks
// HTTP/2, whose deadlines its server (internal/h2) keeps.
func (c *slotConn) leaveBounds() {
	c.timing.mu.Lock()
	defer c.timing.mu.Unlock()
	c.timing.lim.noClamp = true
	c.timing.hdrBy, c.timing.body = time.Time{}, false
	c.timing.watch.Store(false)
	c.apply(time.Now())
}

// armBody applies the minimum receive rate to the body of the request
// being served, until net/http has read it all (SetReadDeadline).
func (c *slotConn) armBody() {
	if c.timing.lim.minRate <= 0 {
		return
	}
	c.timing.mu.Lock()
	defer c.timing.mu.Unlock()
	c.timing.body, c.timing.bodyN, c.timing.waited = true, 0, 0
	c.timing.watch.Store(true)
}

// fdReserve is what defaultWorkerConnections leaves of the descriptor limit
// for everything but connections: listeners, logs, the scoreboard, files
// being sent, an app server's sockets.
const fdReserve = 64

// defaultWorkerConnections is an event child's connection limit when
// worker_connections is 0: its descriptor limit (RLIMIT_NOFILE, which Go
// raises to the hard limit at start) less fdReserve, and never fewer than
// its slots.
func defaultWorkerConnections(slots int) int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == unix.RLIM_INFINITY {
		return max(slots, 1<<20)
	}
	return max(slots, int(min(rl.Cur, 1<<30))-fdReserve)
}
