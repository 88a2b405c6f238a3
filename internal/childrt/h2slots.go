package childrt

import (
	"sync"
	"sync/atomic"

	"github.com/phasedhq/phased/internal/contract"
	"github.com/phasedhq/phased/internal/scoreboard"
)

// Under the worker and prefork models a connection holds its slot for its
// whole life, and an HTTP/1.1 connection's requests run on it one after
// another. An HTTP/2 connection's streams may be served at once: each
// stream's request takes a slot of its own, as every request does under
// the event model, so that the scoreboard shows one busy slot for each
// request in flight, and threads_per_child bounds them as it bounds
// HTTP/1.1 requests. The first stream takes the connection's own slot;
// under worker, a stream that finds it serving takes a free slot of the
// child, or waits for whichever comes first, the connection's slot or a
// free one; under prefork (one slot a child) it waits for the
// connection's slot: one request at a time, as Apache's mod_http2 serves
// under prefork. A stream's slot is given back when its request ends; the
// connection's own slot, if the connection closed meanwhile, once its last
// stream is done (slotConn.Close), so no other connection takes it while a
// request still runs on it.

// streamSlots is an HTTP/2 connection's use of its own slot.
type streamSlots struct {
	mu      sync.Mutex
	busy    bool          // a stream's request runs on the connection's slot
	closed  bool          // the connection closed while busy: the last stream gives the slot back
	waiting []*slotWaiter // streams waiting, oldest first; some may have been served by the child's queue
}

// slotWaiter is a stream waiting for a slot, from its connection or, under
// worker, from the child's queue (capacity.give): whichever claims it
// first sends the slot on ch.
type slotWaiter struct {
	ch      chan int
	claimed atomic.Bool
}

// streamSlot takes a slot for an HTTP/2 stream's request on sc, under the
// worker and prefork models, waiting for one if need be.
func (s *server) streamSlot(sc *slotConn) int {
	ss := &sc.streams
	ss.mu.Lock()
	if !ss.busy {
		ss.busy = true
		ss.mu.Unlock()
		return sc.slot
	}
	w := &slotWaiter{ch: make(chan int, 1)}
	ss.waiting = append(ss.waiting, w)
	ss.mu.Unlock()
	if s.model == ModelWorker {
		s.cap.takeFor(w)
	}
	return <-w.ch
}

// tryOwnSlot takes sc's own slot for a request answered at once (the
// HTTP/2 inline path), if no stream's request runs on it.
func (sc *slotConn) tryOwnSlot() bool {
	ss := &sc.streams
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.busy {
		return false
	}
	ss.busy = true
	return true
}

// streamDone gives back the slot a stream's request ran on: a slot of the
// child to the child (idle on the scoreboard), the connection's own to the
// connection's next waiting stream, or, once the connection has closed, to
// the child.
func (s *server) streamDone(sc *slotConn, slot int) {
	if slot != sc.slot {
		if s.board != nil {
			s.board.Worker(s.proc, slot).SetState(scoreboard.Idle)
		}
		s.cap.give(slot)
		return
	}
	ss := &sc.streams
	ss.mu.Lock()
	for len(ss.waiting) > 0 {
		w := ss.waiting[0]
		ss.waiting[0] = nil
		ss.waiting = ss.waiting[1:]
		if w.claimed.CompareAndSwap(false, true) {
			ss.mu.Unlock()
			w.ch <- slot
			return
		}
	}
	ss.busy = false
	closed := ss.closed
	if w := sc.worker(); w != nil && !closed {
		w.SetState(scoreboard.KeepAlive) // as between HTTP/1.1 requests
	}
	ss.mu.Unlock()
	if closed {
		sc.release()
	}
}

// closeStreams marks sc closed and reports whether a stream's request still
// runs on its slot, which then gives the slot back itself (streamDone).
func (sc *slotConn) closeStreams() (busy bool) {
	ss := &sc.streams
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.closed = true
	return ss.busy
}

// takeFor gives w a free slot at once, or puts it in the queue of requests
// waiting for one, unless its connection's own slot claimed it first.
func (c *capacity) takeFor(w *slotWaiter) {
	c.mu.Lock()
	if n := len(c.free); n > 0 {
		if w.claimed.CompareAndSwap(false, true) {
			s := c.free[n-1]
			c.free = c.free[:n-1]
			c.tookLocked()
			w.ch <- s
			return
		}
		c.mu.Unlock()
		return
	}
	c.queue.push(waiter{ch: w.ch, claim: &w.claimed})
	c.mu.Unlock()
}

// speaksH2 reports whether a listener may serve HTTP/2.
func speaksH2(lopts []contract.Listener) bool {
	for _, o := range lopts {
		if o.H2C || o.TLS != nil && o.TLS.HTTP2 {
			return true
		}
	}
	return false
}
