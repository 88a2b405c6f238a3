package childrt

import (
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/phasedhq/phased/internal/scoreboard"
)

// A worker or prefork child's connection holds its slot from the accept to
// the close, reading its header and idle between keep-alive requests
// included (Apache's worker and prefork). Connections that send nothing can
// so hold every slot of a child for up to timeouts.read_header each while
// clients that would send a request wait in the accept queue, and past the
// backlog have their handshakes dropped: after a flood of 10,000
// connections, the connections it left in the accept queue, which sent
// nothing, stalled a worker server of 150 threads for seconds.
//
// The reclaimer ends that. While every slot of the child is held and
// connections wait in a listener's accept queue at two looks reclaimPoll
// apart, it closes the child's connections that have sent nothing since
// the accept for reclaimSilence (no byte of a header, a TLS handshake, a
// PROXY header). Once the master has also said, during that time, that the
// server is at its limit (the MPM wanted more children than it may have:
// scoreboard.MaxChildrenReached), it closes keep-alive connections idle for
// reclaimSilence since their last response too, as Apache's event MPM
// closes kept-alive connections when its workers run short; before that, a
// new child is the better answer for them. A connection that has sent part
// of a request is left to the header timeout and the minimum rate. Closing
// it is its own goroutine's: the connection's header bound becomes now, its
// read ends as a header timeout does, and it is closed without a byte
// written (a keep-alive client retries an idempotent request on a closed
// idle connection, as it must for any server's idle close).
const (
	reclaimPoll    = 250 * time.Millisecond
	reclaimSilence = time.Second
	reclaimWarn    = time.Minute // how often a child warns about reclaiming
)

// reclaimer runs for a worker or prefork child until its capacity closes.
// queued counts the connections waiting in the child's accept queues (-1
// for a listener that cannot tell); atLimit is the master's count of
// maintenance ticks that found the server at its limit; reclaimed hears
// how many connections each pass closed.
func (c *capacity) reclaimer(queued func() int, atLimit func() uint64, reclaimed func(int)) {
	tick := time.NewTimer(reclaimPoll)
	tick.Stop()
	for {
		select {
		case <-c.fullSig:
		case <-c.stopped:
			return
		}
		waited := 0 // consecutive looks that found connections queued
		limit := atLimit()
		for {
			tick.Reset(reclaimPoll)
			select {
			case <-tick.C:
			case <-c.stopped:
				tick.Stop()
				return
			}
			c.mu.Lock()
			full := len(c.free) == 0 && !c.closed
			c.mu.Unlock()
			if !full {
				break
			}
			if queued() > 0 {
				waited++
			} else {
				waited = 0
			}
			if waited < 2 {
				continue
			}
			if n := c.reclaim(time.Now(), atLimit() != limit); n > 0 {
				reclaimed(n)
			}
		}
	}
}

// reclaim closes the held connections that have sent nothing for
// reclaimSilence at now, idle keep-alive ones too when kept, and returns
// how many.
func (c *capacity) reclaim(now time.Time, kept bool) int {
	c.mu.Lock()
	held := slices.Clone(c.held)
	c.mu.Unlock()
	n := 0
	for _, sc := range held {
		if sc != nil && sc.reclaimIfSilent(now, kept) {
			n++
		}
	}
	return n
}

// reclaimIfSilent ends c's wait for a header that has not begun for
// reclaimSilence at now, a keep-alive connection's next one only when
// kept: its bound becomes now, so the read waiting for it ends at once as
// a header timeout. It reports whether it did.
func (c *slotConn) reclaimIfSilent(now time.Time, kept bool) bool {
	if c.closed.Load() {
		return false
	}
	c.timing.mu.Lock()
	defer c.timing.mu.Unlock()
	t := &c.timing
	if t.lim.noClamp || t.hdrBy.IsZero() || !t.first.IsZero() || (t.kept && !kept) ||
		now.Sub(t.since) < reclaimSilence || !t.hdrBy.After(now) {
		return false
	}
	t.hdrBy = now
	_ = c.apply(now)
	return true
}

// reclaimLog counts reclaimed connections and warns about them at most
// once a reclaimWarn per child, with how many went since.
type reclaimLog struct {
	counters *scoreboard.Counters
	log      *slog.Logger
	slots    int
	warn     warnEvery // every reclaimWarn
}

func (r *reclaimLog) reclaimed(n int) {
	r.counters.Add(scoreboard.ConnectionsReclaimed, uint64(n))
	n, ok := r.warn.add(n, time.Now())
	if !ok {
		return
	}
	r.log.Warn("every thread of this child was held while connections waited to be accepted; closed connections that had sent nothing for a second (new ones; idle keep-alive ones too once the server was at max_request_workers); see phased_connections_reclaimed_total",
		"connections", n, "threads", r.slots, "silent_for", reclaimSilence)
}

// queuedAll counts the connections waiting in ls's accept queues, those
// that can tell.
func queuedAll(ls []net.Listener) func() int {
	return func() int {
		n := 0
		for _, l := range ls {
			n += max(queued(l), 0)
		}
		return n
	}
}
