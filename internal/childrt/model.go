package childrt

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phasedhq/phased/internal/clientip"
	"github.com/phasedhq/phased/internal/scoreboard"
)

// Model is how the child shares its slots among connections.
type Model string

// The child models, as sdk/mpm names them.
const (
	// ModelPrefork serves one connection at a time.
	ModelPrefork Model = "prefork"
	// ModelWorker gives each connection a slot for its whole life and
	// accepts only while a slot is free, so waiting connections queue in the
	// kernel's backlog, where another child can take them. A connection
	// reading its header, or idle between keep-alive requests, holds its
	// slot (Apache's worker MPM): slow clients can fill a child.
	ModelWorker Model = "worker"
	// ModelEvent gives a slot to each request, taken once the request's
	// header is in and given back when its response is made: a connection
	// reading its header, or idle between keep-alive requests, waits in the
	// netpoller and holds no slot. It accepts while more slots are free
	// than connections pending (capacity.pending), so a child whose slots
	// all serve leaves new connections in the backlog for a sibling (or a
	// burst's connections fill the accept queue: then it accepts while a
	// slot is free), while it holds fewer than worker_connections
	// connections, and while it holds not many more than the sibling with
	// fewest (gate.balance).
	ModelEvent Model = "event"
)

// capacity is a child's slots: which are free, how many connections it holds,
// and whether it still accepts.
type capacity struct {
	mu   sync.Mutex
	cond *sync.Cond
	free []int // free slot numbers, a stack
	// queue waits for slots while none is free, oldest first: requests of
	// open connections (take(false)), to which give hands a slot in turn,
	// and the event model's accept loop (admit), which a slot reaching it
	// lets accept one connection, whose request then queues behind those
	// already waiting. (Woken together by a broadcast, the waiters raced
	// for a slot given back, and a request that had just come took it
	// before any of them: at 16 connections on children of one slot, p99
	// was 20 times the median.) free is empty while queue holds a request.
	queue    line
	spare    []chan int // queue's channels, for reuse
	conns    int        // open connections
	maxConns int        // event only; 0 = no limit beyond the slots
	// pending counts event connections accepted with their first request
	// not yet read (conns.go's settle): each will want a slot at once, so
	// the child accepts only while more slots are free than that, and a
	// connection whose request finds every slot busy waits in the backlog,
	// where the MPM sees it and a sibling can take it. A connection that
	// still has nothing to read pendWindow after its goroutine first looks,
	// or whose header does not come in one read, is pending no more: a
	// silent or slow client holds nothing.
	pending  int
	accepted uint64
	limit    uint64 // stop accepting after this many connections; 0 = never
	// pastLimit keeps the child accepting once limit is reached: a child
	// with a master asks it to retire and accepts until its replacement is
	// ready (the master's DrainSignal).
	pastLimit bool
	closed    bool
	limitHit  chan struct{} // closed when limit is reached
	// full: an accept waits because the event model holds maxConns
	// connections; onFull, when set, hears (under mu) when it starts and
	// stops waiting for that reason.
	full   bool
	onFull func(full bool)
	// lastTaken counts the times acceptAny took the last free slot; an
	// accept loop that saw a slot free knows from it whether the slot went
	// while it cleared its listener's deadline.
	lastTaken uint64
	// listeners are the worker and prefork child's listeners when it has
	// several (acceptAny): when a connection takes the last free slot,
	// their waiting Accepts are stopped.
	listeners []deadliner
	// held are the worker and prefork models' connections by slot, and
	// fullSig hears when one takes the last free slot: the reclaimer
	// (reclaim.go) looks at them then.
	held    []*slotConn
	fullSig chan struct{}
	stopped chan struct{} // closed by close
}

// waiter is a place in capacity.queue: a request, handed its slot on ch,
// or an accept loop (accept), told on ch that it may accept (0) or that
// the child stopped accepting (-1). A request with claim waits for its
// connection's slot too (h2slots.go): the slot goes to it only if claim
// was not taken first.
type waiter struct {
	ch     chan int
	accept bool
	claim  *atomic.Bool
}

// line is a queue of waiters, a ring that grows: a line that people join
// and leave all the time allocates nothing once it is long enough.
type line struct {
	ring    []waiter
	head, n int
}

func (l *line) push(w waiter) {
	if l.n == len(l.ring) {
		ring := make([]waiter, max(8, 2*len(l.ring)))
		for i := range l.n {
			ring[i] = l.ring[(l.head+i)%len(l.ring)]
		}
		l.ring, l.head = ring, 0
	}
	l.ring[(l.head+l.n)%len(l.ring)] = w
	l.n++
}

// pop takes the oldest waiter; the line must not be empty.
func (l *line) pop() waiter {
	w := l.ring[l.head]
	l.ring[l.head] = waiter{}
	l.head = (l.head + 1) % len(l.ring)
	l.n--
	return w
}

// enqueue puts a waiter at the end of the queue (under mu).
func (c *capacity) enqueue(accept bool) chan int {
	var ch chan int
	if n := len(c.spare); n > 0 {
		ch, c.spare = c.spare[n-1], c.spare[:n-1]
	} else {
		ch = make(chan int, 1)
	}
	c.queue.push(waiter{ch: ch, accept: accept})
	return ch
}

// await waits for ch's word, outside mu (it is held on entry and on
// return), and keeps ch for reuse.
func (c *capacity) await(ch chan int) int {
	c.mu.Unlock()
	v := <-ch
	c.mu.Lock()
	c.spare = append(c.spare, ch)
	return v
}

// deadliner is a listener whose waiting Accept a past deadline stops.
type deadliner interface{ SetDeadline(time.Time) error }

func newCapacity(slots, maxConns int, limit uint64) *capacity {
	c := &capacity{maxConns: maxConns, limit: limit, limitHit: make(chan struct{}),
		held: make([]*slotConn, slots), fullSig: make(chan struct{}, 1), stopped: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	for i := slots - 1; i >= 0; i-- {
		c.free = append(c.free, i)
	}
	return c
}

// take waits for a free slot and takes it. For an accept it gives up (false)
// once the child stops accepting; a request of an open connection always
// gets its slot.
func (c *capacity) take(forAccept bool) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !forAccept && len(c.free) == 0 {
		return c.await(c.enqueue(false)), true
	}
	for len(c.free) == 0 && !(forAccept && c.closed) {
		c.cond.Wait()
	}
	if forAccept && c.closed {
		return 0, false
	}
	s := c.free[len(c.free)-1]
	c.free = c.free[:len(c.free)-1]
	return s, true
}

// waitFree waits, for acceptAny, until a slot is free without taking it;
// it returns lastTaken, or false once the child stops accepting.
func (c *capacity) waitFree() (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.free) == 0 && !c.closed {
		c.cond.Wait()
	}
	return c.lastTaken, !c.closed
}

// stillFree reports whether no connection took the last free slot since
// waitFree returned n.
func (c *capacity) stillFree(n uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastTaken == n && len(c.free) > 0
}

// takeAccepted takes a slot for a connection acceptAny accepted, waiting
// for one if a connection on another listener took the last one meanwhile;
// when it takes the last, it stops every listener's waiting Accept.
func (c *capacity) takeAccepted() int {
	s, _ := c.take(false)
	c.mu.Lock()
	c.tookLocked()
	return s
}

// tookLocked follows a slot taken under mu, which it unlocks: when the
// last free one went, it stops every listener's waiting Accept (acceptAny)
// and tells the reclaimer, as hold does for a connection's slot (an
// HTTP/2 stream may take the last one too).
func (c *capacity) tookLocked() {
	last := len(c.free) == 0
	if last {
		c.lastTaken++
	}
	c.mu.Unlock()
	if last {
		now := time.Now()
		for _, l := range c.listeners {
			_ = l.SetDeadline(now)
		}
		select {
		case c.fullSig <- struct{}{}:
		default:
		}
	}
}

// hold records sc as the holder of its slot, and tells the reclaimer when
// it took the last one.
func (c *capacity) hold(sc *slotConn) {
	c.mu.Lock()
	c.held[sc.slot] = sc
	full := len(c.free) == 0
	c.mu.Unlock()
	if full {
		select {
		case c.fullSig <- struct{}{}:
		default:
		}
	}
}

func (c *capacity) give(s int) {
	c.mu.Lock()
	c.held[s] = nil
	for c.queue.n > 0 {
		w := c.queue.pop()
		if w.accept {
			w.ch <- 0 // its turn: accept, and the slot goes on
			continue
		}
		if w.claim != nil && !w.claim.CompareAndSwap(false, true) {
			continue // served by its connection's slot meanwhile
		}
		c.mu.Unlock()
		w.ch <- s
		return
	}
	c.free = append(c.free, s)
	c.mu.Unlock()
	c.cond.Broadcast()
}

// admit waits until the event model may accept one more connection: a slot
// free beyond those pending connections will want (none is taken: the
// connection takes one only once it has sent a request's header, and a
// connection that sends nothing costs no slot), and room under maxConns.
// The connection it admits is pending. When only the pending connections
// hold it back, it looks at the listener's accept queue (queued): past
// burstQueue connections, a burst arrives faster than this child's
// goroutines read their first requests, and it admits while a slot is
// free; waiting, it would let the backlog overflow, the kernel drop
// handshakes and clients retry a second later (at 10,000 keep-alive
// connections, wrk's timeouts and a p99 of 0.4-1.1 s). While every slot
// serves, it waits for its turn among the requests that wait (queue): a
// slot freed is then never free for long enough, and a connection in the
// backlog would wait there as long as the child's clients keep it busy.
func (c *capacity) admit(queued func() int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	turn := false
	for !c.closed {
		if c.maxConns > 0 && c.conns >= c.maxConns {
			if !c.full {
				c.setFull(true)
			}
			c.cond.Wait()
			continue
		}
		if turn || len(c.free) > c.pending {
			break
		}
		if len(c.free) == 0 {
			turn = c.await(c.enqueue(true)) >= 0
			continue
		}
		if queued == nil {
			c.cond.Wait()
			continue
		}
		c.mu.Unlock()
		burst := queued() >= burstQueue
		if !burst {
			time.Sleep(burstPoll)
		}
		c.mu.Lock()
		if burst && len(c.free) > 0 && !(c.maxConns > 0 && c.conns >= c.maxConns) {
			break
		}
	}
	if c.full {
		c.setFull(false)
	}
	if c.closed {
		return false
	}
	c.conns++
	c.pending++
	return true
}

// unpend ends a connection's pending (admit).
func (c *capacity) unpend() {
	c.mu.Lock()
	c.pending--
	c.mu.Unlock()
	c.cond.Broadcast()
}

// setFull records (under mu) whether the event model waits for a
// connection to close before it may accept.
func (c *capacity) setFull(f bool) {
	c.full = f
	if c.onFull != nil {
		c.onFull(f)
	}
}

// tunnel gives back slot s of an event request whose handler took its
// connection over, and counts one more connection (the app connection
// the client's is tunneled to, which holds a descriptor as the client's
// does) until the handler returns and leave is called.
func (c *capacity) tunnel(s int) {
	c.mu.Lock()
	c.conns++
	c.mu.Unlock()
	c.give(s)
}

func (c *capacity) leave() {
	c.mu.Lock()
	c.conns--
	c.mu.Unlock()
	c.cond.Broadcast()
}

// count records an accepted connection. At the last one the child may
// accept, it calls reached before it closes limitHit, so what reached
// records is there for whoever limitHit wakes: the child asks the master to
// retire it on limitHit, and the master counts the retire as
// max_connections_per_child only if reached's counter is already bumped.
func (c *capacity) count(reached func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.accepted++
	if c.limit > 0 && c.accepted == c.limit {
		reached()
		close(c.limitHit)
	}
}

// exhausted reports whether the connection limit was reached.
func (c *capacity) exhausted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.limit > 0 && c.accepted >= c.limit && !c.pastLimit
}

func (c *capacity) close() {
	c.mu.Lock()
	if !c.closed {
		close(c.stopped)
	}
	c.closed = true
	// Accept loops stop waiting for their turn; requests keep theirs.
	for range c.queue.n {
		if w := c.queue.pop(); w.accept {
			w.ch <- -1
		} else {
			c.queue.push(w)
		}
	}
	c.mu.Unlock()
	c.cond.Broadcast()
}

// gate is a listener that accepts only when the model has room.
type gate struct {
	net.Listener
	model    Model
	cap      *capacity
	board    *scoreboard.Board
	counters *scoreboard.Counters
	proc     int
	limits   connLimits // the header timeouts and the minimum receive rate
	// unbalancedUntil: balance found a sibling that took no connection
	// while this child waited; it does not wait again before then.
	unbalancedUntil time.Time
}

// The event model's accept in a burst (capacity.admit).
const (
	burstQueue = 16                     // connections in the accept queue
	burstPoll  = 500 * time.Microsecond // how often admit looks at it
)

// The event model's balance among siblings (gate.balance).
const (
	balanceSlack = 8                      // connections above the sibling with fewest, at least
	balanceStep  = 250 * time.Microsecond // how often balance looks again
	balanceWait  = 10 * time.Millisecond  // how long it waits at most
	balanceOff   = time.Second            // after a sibling took nothing meanwhile
)

func (g *gate) Accept() (net.Conn, error) {
	if g.cap.exhausted() {
		return nil, g.block()
	}
	slot := -1
	var c net.Conn
	var err error
	switch {
	case g.model == ModelEvent:
		g.balance()
		if !g.cap.admit(g.queued) {
			return nil, net.ErrClosed
		}
		if c, err = g.Listener.Accept(); err != nil {
			g.cap.unpend()
			g.cap.leave()
			return nil, err
		}
	case g.cap.listeners != nil:
		if c, slot, err = g.acceptAny(); err != nil {
			return nil, err
		}
	default:
		s, ok := g.cap.take(true)
		if !ok {
			return nil, net.ErrClosed
		}
		slot = s
		if c, err = g.Listener.Accept(); err != nil {
			g.cap.give(slot)
			return nil, err
		}
	}
	g.cap.count(func() { g.counters.Add(scoreboard.MaxConnectionsReached, 1) })
	g.counters.Add(scoreboard.Accepted, 1)
	sc := &slotConn{Conn: c, g: g, slot: slot}
	sc.pending.Store(g.model == ModelEvent)
	if g.board != nil {
		sc.proc = g.board.Proc(g.proc)
		sc.proc.Opened()
	}
	sc.accepted(time.Now())
	if slot >= 0 {
		g.cap.hold(sc)
	}
	if w := sc.worker(); w != nil {
		w.StartConn()
		w.SetState(scoreboard.Reading)
	}
	return sc, nil
}

// balance holds an event child back from accepting while it holds clearly
// more connections than the sibling of its generation with fewest (which
// is ready, accepting and not full), for at most balanceWait. Keep-alive
// connections stay with the child that accepted them, and each child's
// share of the CPUs is about the same, so a child with twice its
// sibling's connections answers each of them half as often: its clients'
// latency tail was nginx's several times over at 10,000 connections
// (nginx spreads accepts by waking one idle worker, EPOLLEXCLUSIVE). Held
// back, the child is not in Accept, and the kernel wakes a sibling's
// netpoller for the connection. A sibling that takes none of the
// connections waiting while this child waits (stopped, wedged) turns
// balancing off for balanceOff.
func (g *gate) balance() {
	if g.board == nil || time.Now().Before(g.unbalancedUntil) {
		return
	}
	me := g.board.Proc(g.proc)
	gen := me.Generation()
	var start time.Time
	first := -1 // the fewest when this child began waiting
	for {
		least := -1
		for i := range g.board.Procs() {
			p := g.board.Proc(i)
			if i == g.proc || p.PID() == 0 || p.Generation() != gen || p.State() != scoreboard.Idle || p.Quiescing() || p.Full() {
				continue
			}
			if c := p.Conns(); least < 0 || c < least {
				least = c
			}
		}
		if least < 0 || me.Conns() <= least+max(balanceSlack, least/16) {
			return
		}
		now := time.Now()
		if start.IsZero() {
			start, first = now, least
		} else if now.Sub(start) >= balanceWait {
			// A sibling that took none of the connections waiting for
			// it is stopped or wedged: do not wait for it again soon.
			if least <= first && queued(g.Listener) != 0 {
				g.unbalancedUntil = now.Add(balanceOff)
			}
			return
		}
		time.Sleep(balanceStep)
	}
}

// queued returns how many connections wait in the gate's accept queue.
func (g *gate) queued() int { return queued(g.Listener) }

// queued returns how many connections wait in l's accept queue, which a
// child's TCP listeners (sockconn's, the accept mutex's) read with
// TCP_INFO, or -1 when it cannot tell (net's listener on a unix socket).
func queued(l net.Listener) int {
	if q, ok := l.(interface{ QueueDepth() (int, int, error) }); ok {
		if n, _, err := q.QueueDepth(); err == nil {
			return n
		}
	}
	return -1
}

// acceptAny is Accept for a worker or prefork child with several
// listeners. A slot taken before Accept would wait for a connection on one
// listener while the others' connections waited for a sibling (a prefork
// child has one slot): as Apache's children poll every listener, each
// listener's loop here waits in Accept while a slot is free, and the
// connection takes one once accepted. When the last is taken, the other
// loops' Accepts are stopped by a past deadline, so that the child does
// not take connections it has no slot for; they wait for a free slot and
// clear the deadline. Two connections accepted at the same moment on two
// listeners for the last slot: the second waits for it in the child.
func (g *gate) acceptAny() (net.Conn, int, error) {
	dl := g.Listener.(deadliner)
	for {
		n, ok := g.cap.waitFree()
		if !ok {
			return nil, -1, net.ErrClosed
		}
		if err := dl.SetDeadline(time.Time{}); err != nil {
			return nil, -1, err
		}
		// The last slot may have gone, and this listener's deadline been
		// set, before it was cleared: wait for a free slot again.
		if !g.cap.stillFree(n) {
			continue
		}
		c, err := g.Listener.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return nil, -1, err
		}
		return c, g.cap.takeAccepted(), nil
	}
}

// block waits for Close once the child may accept no more connections, so
// http.Server does not spin on an error.
func (g *gate) block() error {
	g.cap.mu.Lock()
	for !g.cap.closed {
		g.cap.cond.Wait()
	}
	g.cap.mu.Unlock()
	return net.ErrClosed
}

func (g *gate) Close() error {
	g.cap.close()
	return g.Listener.Close()
}

// slotConn is an accepted connection and, in the worker and prefork models,
// the slot it holds. It also keeps the connection's state for the
// scoreboard's connection counts and the header timeout and minimum
// receive rate that no layer above it can stretch (conns.go).
type slotConn struct {
	net.Conn
	g      *gate
	slot   int                  // -1 in the event model
	proc   *scoreboard.ProcSlot // nil without a scoreboard
	closed atomic.Bool
	cstate atomic.Int32 // a connState
	timing connTiming
	// pending: an event connection whose first request may want a slot at
	// once (capacity.pending); reads counts the reads settle saw.
	pending   atomic.Bool
	reads     atomic.Int32
	pendTimer atomic.Pointer[time.Timer] // ends the first read's pending (settle)
	streams   streamSlots                // HTTP/2 streams on the slot (h2slots.go)
}

// CloseWrite passes net/http's half-close on (closeWrite).
func (c *slotConn) CloseWrite() error { return closeWrite(c.Conn) }

func (c *slotConn) worker() *scoreboard.WorkerSlot {
	if c.g.board == nil || c.slot < 0 {
		return nil
	}
	return c.g.board.Worker(c.g.proc, c.slot)
}

func (c *slotConn) Close() error {
	first := c.closed.CompareAndSwap(false, true)
	if first {
		c.setState(connClosing)
		if w := c.worker(); w != nil {
			w.SetState(scoreboard.Closing)
		}
	}
	err := c.Conn.Close()
	if first {
		c.unpend()
		c.setState(connClosed)
		if c.proc != nil {
			c.proc.Closed()
		}
		if c.slot < 0 {
			c.g.cap.leave()
		} else if !c.closeStreams() {
			c.release()
		}
	}
	return err
}

// release gives a closed connection's slot back to the child.
func (c *slotConn) release() {
	if w := c.worker(); w != nil {
		w.SetState(scoreboard.Idle)
	}
	c.g.cap.give(c.slot)
}

type ctxKey struct{}

// scored wraps h: it marks the slot's state and counters around every
// request, takes a request slot in the event model, and answers with
// "Connection: close" once the child drains or after a request framed
// ambiguously (see framingConn).
func (s *server) scored(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.realIP != nil {
			s.realClient(r)
		}
		if s.isDraining() || ambiguousFraming(r) {
			w.Header().Set("Connection", "close")
		}
		if s.health.serves(r.URL.Path) {
			s.health.ServeHTTP(w, r)
			return
		}
		sc, _ := r.Context().Value(ctxKey{}).(*slotConn)
		slot := -1
		if sc != nil {
			slot = sc.slot
			if r.ProtoMajor == 1 && r.Body != http.NoBody {
				sc.armBody() // the minimum receive rate
			}
		}
		event := s.cap != nil && s.model == ModelEvent
		var stream *slotConn // an HTTP/2 stream's, under worker and prefork
		if event {
			slot = s.requestSlot(sc)
		} else if r.ProtoMajor == 2 && slot >= 0 && s.cap != nil {
			slot, stream = s.streamSlot(sc), sc
		}
		if slot < 0 || s.board == nil && !event && stream == nil {
			h.ServeHTTP(w, r)
			return
		}
		cw := &countingWriter{ResponseWriter: w, s: s, slot: slot, event: event, stream: stream, start: time.Now()}
		if s.board != nil {
			cw.ws = s.board.Worker(s.proc, slot)
			cw.ws.StartRequest(cw.start, clientip.FromRemoteAddr(r.RemoteAddr), r.Method, r.RequestURI, r.Proto)
		}
		defer cw.done()
		h.ServeHTTP(cw, r)
	})
}

// realClient makes r's RemoteAddr the client a trusted proxy's header
// names (with the connection's port, as Apache's mod_remoteip), so that
// everything after it (the status page's and health checks' allow lists,
// the access log, the scoreboard, an app's X-Forwarded-For, CGI's
// REMOTE_ADDR) sees the client, not the proxy. A request from a trusted
// proxy is marked so (clientip.WithTrustedProxy): an app may then be told
// the scheme and host the proxy was asked for.
func (s *server) realClient(r *http.Request) {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !s.realIP.Trusts(peer.Addr()) {
		return
	}
	*r = *r.WithContext(clientip.WithTrustedProxy(r.Context()))
	values := r.Header.Values(s.realIP.Header())
	if len(values) == 0 {
		return
	}
	if c := s.realIP.Client(peer.Addr().Unmap(), values); c != peer.Addr().Unmap() {
		r.RemoteAddr = netip.AddrPortFrom(c, peer.Port()).String()
	}
}

// requestSlot takes a slot for a request in the event model; the
// connection is no longer reading (or idle) but served.
func (s *server) requestSlot(sc *slotConn) int {
	if sc != nil {
		sc.setState(connServed)
		sc.unpend()
	}
	slot, _ := s.cap.take(false)
	return slot
}

// endRequest closes the scoreboard's record of a request that started at
// start and sent n body bytes, and counts it.
func (s *server) endRequest(ws *scoreboard.WorkerSlot, start time.Time, n int64) {
	s.endRequestAt(ws, start, time.Now(), n)
}

// endRequestAt is endRequest with the clock read.
func (s *server) endRequestAt(ws *scoreboard.WorkerSlot, start, end time.Time, n int64) {
	ws.EndRequest(end, n)
	d := end.Sub(start)
	s.counters.Observe(d)
	if s.slow > 0 && d > s.slow {
		s.counters.Add(scoreboard.SlowRequests, 1)
	}
	if s.model == ModelEvent {
		ws.SetState(scoreboard.Idle)
	}
}

// connContext puts the accepted connection, and its slot, into each
// request's context.
func connContext(ctx context.Context, c net.Conn) context.Context {
	ctx = withFramingConn(ctx, c)
	ctx = withCarry(ctx, c)
	if sc := connSlot(c); sc != nil {
		return context.WithValue(ctx, ctxKey{}, sc)
	}
	return ctx
}

// countingWriter counts body bytes and keeps the optional interfaces of the
// writer it wraps (sendfile through ReadFrom, Flush, Hijack).
type countingWriter struct {
	http.ResponseWriter
	n int64
	// The request scored serves: its slot (the event model's own, given
	// back at its end), its scoreboard record (nil without a board), and
	// whether its handler took the connection over (tunnel).
	s        *server
	slot     int
	event    bool
	stream   *slotConn // the connection of an HTTP/2 stream's slot (h2slots.go)
	ws       *scoreboard.WorkerSlot
	start    time.Time
	tunneled bool
}

// done ends the request scored serves: its scoreboard record, and its
// slot (the event model's, or an HTTP/2 stream's), or its tunnel's count.
func (w *countingWriter) done() {
	if w.ws != nil {
		w.s.endRequest(w.ws, w.start, w.n)
	}
	switch {
	case w.stream != nil:
		w.s.streamDone(w.stream, w.slot)
	case !w.event:
	case w.tunneled:
		w.s.cap.leave()
		if w.s.board != nil {
			w.s.board.Proc(w.s.proc).AddTunnels(-1)
		}
	default:
		w.s.cap.give(w.slot)
	}
}

// tunnel is the event model's request whose handler took the connection
// over (a WebSocket's tunnel, after its 101): it serves no request any
// more, so its slot goes back, as a connection idle between requests holds
// none, and the request is over on the scoreboard. The connection, and the
// app connection it is tunneled to, count among the child's connections
// (worker_connections) until the handler returns.
func (w *countingWriter) tunnel() {
	if w.ws != nil {
		w.s.endRequest(w.ws, w.start, w.n)
		w.ws = nil
	}
	w.s.cap.tunnel(w.slot)
	if w.s.board != nil {
		w.s.board.Proc(w.s.proc).AddTunnels(1)
	}
	w.tunneled = true
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(w.ResponseWriter, r)
	}
	w.n += n
	return n, err
}

func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *countingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.event && !w.tunneled {
		w.tunnel()
	}
	return c, brw, err
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
