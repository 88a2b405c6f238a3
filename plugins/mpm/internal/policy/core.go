package policy

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/phasedhq/phased/sdk/mpm"
)

// Reasons carried by the actions Maintain returns.
const (
	ReasonStartServers     = "start_servers"      // a generation's first children
	ReasonMinSpare         = "min_spare"          // too few idle slots
	ReasonMaxSpare         = "max_spare"          // too many idle slots
	ReasonKeepStartServers = "keep_start_servers" // fewer children than start_servers
	ReasonMemory           = "memory"             // over max_memory_per_child, and its replacement
)

// Messages Maintain logs, worded as Apache's with phased's setting names.
const (
	MsgReachedMax   = "server reached max_request_workers setting, consider raising the max_request_workers setting"
	MsgNearMax      = "server is within min_spare_threads of max_request_workers, consider raising the max_request_workers setting"
	MsgScoreboard   = "scoreboard is full, not at max_request_workers; increase server_limit"
	MsgBusyThreaded = "server seems busy, (you may need to increase start_servers, threads_per_child or min/max_spare_threads), spawning %d children, there are around %d idle threads, and %d total children"
	MsgBusyPrefork  = "server seems busy, (you may need to increase start_servers, or min/max_spare_servers), spawning %d children, there are %d idle, and %d total children"
)

// retained is the state Apache keeps across maintenance cycles (and across
// restarts) in its retained data.
type retained struct {
	// idleSpawnRate is how many children the next spawning tick may start:
	// 1, doubled after each tick that spawned, up to MaxSpawnRate, back to
	// 1 after a tick that did not need to spawn.
	idleSpawnRate int
	// holdOff counts spawning ticks of a new generation that keep the rate
	// instead of doubling it.
	holdOff int
	// maxClientsReported counts the ticks that found the server at
	// max_request_workers (Apache logs once; phased logs every time).
	maxClientsReported int
	// generation is the last generation seen; seen reports whether any was.
	generation int
	seen       bool
	// accepted is each child's Connections at the last tick, by pid, and
	// lastTick the time of that tick: what the queue's drain rate is
	// measured against.
	accepted map[int]uint64
	lastTick time.Time
}

// Core is an MPM policy: a configuration and the state retained between
// maintenance ticks. It is safe for concurrent use.
type Core struct {
	mu  sync.Mutex
	cfg *Config
	st  retained
	// CPUBusy reports the machine's CPU use since its last call (0 to 1),
	// false when unknown; the machine's /proc/stat by default. Tests set it.
	CPUBusy func() (float64, bool)
}

// NewCore returns a policy configured by cfg.
func NewCore(cfg *Config) *Core {
	m := new(cpuMeter)
	return &Core{cfg: cfg, st: retained{idleSpawnRate: 1}, CPUBusy: m.busy}
}

// SetConfig replaces the configuration (a new configuration pass), keeping
// the retained state, as Apache does across a graceful restart.
func (c *Core) SetConfig(cfg *Config) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cfg = cfg
}

// Config returns the current configuration.
func (c *Core) Config() *Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg
}

// SpawnRate returns the number of children the next spawning tick may
// start, and the spawning ticks still held off.
func (c *Core) SpawnRate() (rate, holdOff int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.idleSpawnRate, c.st.holdOff
}

// tick is the bookkeeping of one Maintain call.
type tick struct {
	cfg  *Config
	resp *mpm.MaintainResponse
	// active are the children that are not retiring, less any retired in
	// this tick.
	active []mpm.Child
	// occupied counts slots in use: every child, retiring ones included,
	// plus those spawned in this tick.
	occupied int
	// pending counts children spawned in this tick (not in active).
	pending int
	// queued counts the connections waiting in the listeners' accept
	// queues (prefork and worker): demand no idle slot has taken yet.
	queued int
	// draining reports that connections wait in the accept queues but the
	// children take them within QueueWait (Core.acceptRate).
	draining bool
	// turning are the busy prefork children, by slot, whose connections
	// each last less than QueueWait, on a machine whose CPUs are the limit
	// (Core.acceptRate): each is free again for the next connection within
	// that time, and more children would only share the same CPUs.
	turning map[int]bool
	// saturated: the machine's CPUs were busy at least SaturatedCPU of
	// the time since the last tick.
	saturated bool
}

func (t *tick) free() int { return max(0, t.cfg.ServerLimit-t.occupied) }

func (t *tick) log(level mpm.Level, msg string, kv ...string) {
	l := mpm.Log{Level: level, Message: msg}
	if len(kv) > 0 {
		l.Attrs = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			l.Attrs[kv[i]] = kv[i+1]
		}
	}
	t.resp.Logs = append(t.resp.Logs, l)
}

func (t *tick) spawn(n int, reason string) {
	if n <= 0 {
		return
	}
	t.resp.Actions = append(t.resp.Actions, mpm.Action{Kind: mpm.Spawn, Count: n, Reason: reason})
	t.occupied += n
	t.pending += n
}

func (t *tick) retire(slot int, reason string) {
	t.resp.Actions = append(t.resp.Actions, mpm.Action{Kind: mpm.Retire, Slot: slot, Reason: reason})
	for i, ch := range t.active {
		if ch.Slot == slot {
			t.active = append(t.active[:i:i], t.active[i+1:]...)
			break
		}
	}
}

// idle counts idle threads (processes for prefork) of the active children
// and of the children spawned in this tick. A starting child counts as all
// idle, as in Apache: it was started at least a tick ago, and forking more
// because it is slow to start would only swamp the machine.
func (t *tick) idle() int {
	tpc := t.cfg.ThreadsPerChild
	prefork := t.cfg.Model == mpm.Prefork
	n := t.pending * tpc
	for _, ch := range t.active {
		switch {
		case ch.State == mpm.ChildStarting:
			n += tpc
		case prefork:
			if ch.IdleSlots > 0 {
				n++
			}
		default:
			n += min(max(ch.IdleSlots, 0), tpc)
		}
	}
	return n
}

// children counts the children that are not retiring, spawned ones included.
func (t *tick) children() int { return len(t.active) + t.pending }

// Maintain runs one maintenance tick over req, as Apache's
// perform_idle_server_maintenance, and returns the actions to take.
func (c *Core) Maintain(ctx context.Context, req *mpm.MaintainRequest) (*mpm.MaintainResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if req == nil {
		req = &mpm.MaintainRequest{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &c.st
	t := &tick{cfg: c.cfg, resp: &mpm.MaintainResponse{}, occupied: len(req.Children)}
	if t.cfg.Model != mpm.Event {
		// A connection holds a prefork child or a worker thread, so each
		// waiting one needs a slot. The event model accepts as long as it
		// has room for connections, not slots: its queue says little.
		for _, l := range req.Listeners {
			t.queued += max(l.QueueDepth, 0)
		}
	}
	if c.CPUBusy != nil && t.cfg.Model == mpm.Prefork {
		busy, ok := c.CPUBusy()
		t.saturated = ok && busy >= SaturatedCPU
	}
	rate := c.acceptRate(req, t)
	if recent, ok := recentRate(req); ok {
		rate = recent
	}
	if t.queued > 0 && rate > 0 && float64(t.queued)/rate < QueueWait.Seconds() {
		// The last waiting connection is taken within QueueWait.
		t.queued, t.draining = 0, true
	}
	for _, ch := range req.Children {
		if ch.State != mpm.ChildRetiring {
			t.active = append(t.active, ch)
		}
	}

	// A new generation: Apache holds off exponential spawning for ten
	// spawning ticks after a graceful restart (not at first start).
	if !st.seen || req.Generation != st.generation {
		if st.seen || req.Generation > 1 {
			st.holdOff = HoldOffTicks
		}
		st.seen, st.generation = true, req.Generation
	}

	// The first tick of a generation starts what the master has not
	// started of start_servers, and nothing else (Apache's
	// startup_children, then "continue").
	if req.TicksSinceRestart == 0 && len(t.active) < t.cfg.StartServers {
		t.spawn(min(t.cfg.StartServers-len(t.active), t.free()), ReasonStartServers)
		if t.pending > 0 {
			return t.resp, nil
		}
	}

	c.retireForMemory(t)
	c.spares(t)

	// HWSKeepStartServers: never fewer children than start_servers.
	if t.cfg.KeepStartServers {
		if short := min(t.cfg.StartServers-t.children(), t.free()); short > 0 {
			if n := len(t.resp.Actions); n > 0 && t.resp.Actions[n-1].Kind == mpm.Spawn && t.resp.Actions[n-1].Reason == ReasonMinSpare {
				t.resp.Actions[n-1].Count += short
				t.occupied += short
				t.pending += short
			} else {
				t.spawn(short, ReasonKeepStartServers)
			}
		}
	}
	return t.resp, nil
}

// QueueWait is how long the last connection in the accept queues may be
// expected to wait before the children that serve them now take it. A
// queue that drains faster is no demand for more children, and busy
// children that drain it so are no reason to spawn spares: short
// connections (`Connection: close`, one request each) pass through the
// queue all the time, and the children already there take them.
//
// It also bounds how long a busy prefork child's connections may last for
// the child to count as a spare on a machine whose CPUs are saturated
// (SaturatedCPU): by Little's law (one connection at a time), a child that
// accepted n connections in s seconds held each for at most s/n, and one
// that is free again within QueueWait serves the next waiting connection
// within the wait the queue rule already takes as no demand. Under short
// connections at full speed each connection lasts its CPU time plus its
// wait for a CPU, which grows with the children that share the CPUs (40
// children of a race-built server on 2 CPUs: 5 ms alone, 10 ms and more
// beside other work, as in the suite's CI run); an app's
// request of 100 ms, or a keep-alive client, keeps its child busy; on CPUs
// with room to spare (an app's requests waiting for I/O) no busy child
// counts so. (The bound was 10 ms at first: on a machine shared with other
// work the children's connections lasted longer than that, none counted,
// and a server grown to 40 children kept them under short connections.)
const QueueWait = 50 * time.Millisecond

// acceptRate returns the connections a second the children accept now, and
// records this tick's counts for the next. A child's rate is the growth of
// its Connections since the last tick, or for a child not seen then, its
// Connections over its age; 0 when no child accepted anything. On a machine
// whose CPUs are saturated, it marks in t the busy prefork children whose
// rate says their connections last less than QueueWait.
func (c *Core) acceptRate(req *mpm.MaintainRequest, t *tick) float64 {
	st := &c.st
	prev, since := st.accepted, req.Now.Sub(st.lastTick).Seconds()
	st.accepted = make(map[int]uint64, len(req.Children))
	st.lastTick = req.Now
	if req.Now.IsZero() {
		return 0
	}
	rate := 0.0
	for _, ch := range req.Children {
		st.accepted[ch.PID] = ch.Connections
		was, ok := prev[ch.PID]
		switch {
		case ok && since > 0:
			if ch.Connections > was {
				r := float64(ch.Connections-was) / since
				rate += r
				if t.saturated && ch.State == mpm.ChildReady && ch.IdleSlots <= 0 && r*QueueWait.Seconds() >= 1 {
					if t.turning == nil {
						t.turning = map[int]bool{}
					}
					t.turning[ch.Slot] = true
				}
			}
		case !ch.Started.IsZero() && req.Now.After(ch.Started):
			rate += float64(ch.Connections) / req.Now.Sub(ch.Started).Seconds()
		}
	}
	return rate
}

// recentRate is the children's accept rate since the request's Recent
// sample, a quarter of a second before the tick: the freshest rate, which
// judges the queue when there is one. The rate since the last tick, a
// second, lags a change of load: after short connections stop, it still
// holds their thousands a second while the keep-alive clients that arrived
// since wait for children nobody frees (the tick that first saw them
// spawned nothing, and the next, a second later, all they needed); after
// keep-alive clients give way to short connections, it is still low while
// the queue already turns over in microseconds (prefork children busy with
// them would not count as spares for a tick). (The first rules kept the
// second's rate and let the recent one only veto it: they had the second
// of these lags.)
func recentRate(req *mpm.MaintainRequest) (float64, bool) {
	window := req.Now.Sub(req.Recent)
	if req.Recent.IsZero() || window < QueueWait {
		return 0, false
	}
	var n uint64
	for _, ch := range req.Children {
		if ch.Connections > ch.RecentConnections {
			n += ch.Connections - ch.RecentConnections
		}
	}
	return float64(n) / window.Seconds(), true
}

// retireForMemory retires the child furthest over max_memory_per_child, at
// most one a tick, and spawns its replacement first.
func (c *Core) retireForMemory(t *tick) {
	limit := t.cfg.MaxMemoryPerChild
	if limit <= 0 {
		return
	}
	victim := -1
	for i, ch := range t.active {
		if ch.MemoryBytes > limit && (victim < 0 || ch.MemoryBytes > t.active[victim].MemoryBytes) {
			victim = i
		}
	}
	if victim < 0 {
		return
	}
	ch := t.active[victim]
	attrs := []string{"slot", strconv.Itoa(ch.Slot), "pid", strconv.Itoa(ch.PID),
		"memory", strconv.FormatInt(ch.MemoryBytes, 10), "limit", strconv.FormatInt(limit, 10)}
	if t.free() > 0 {
		t.spawn(1, ReasonMemory)
		t.retire(ch.Slot, ReasonMemory)
		t.log(mpm.LevelInfo, "child exceeds max_memory_per_child, retiring it", attrs...)
		return
	}
	// No slot for a replacement: retire it only if another child is ready
	// to take its connections.
	for _, other := range t.active {
		if other.Slot != ch.Slot && other.State == mpm.ChildReady {
			t.retire(ch.Slot, ReasonMemory)
			t.log(mpm.LevelInfo, "child exceeds max_memory_per_child, retiring it without a replacement: no free slot", attrs...)
			return
		}
	}
	t.log(mpm.LevelWarn, "child exceeds max_memory_per_child but is the only child and no slot is free for its replacement; keeping it", attrs...)
}

// spares keeps the idle slots between the minimum and the maximum: retire
// one child above, spawn at the current rate below. Connections waiting in
// the accept queues count against the idle slots: each will take one.
func (c *Core) spares(t *tick) {
	st := &c.st
	cfg := t.cfg
	idle := t.idle() - t.queued
	if t.queued == 0 {
		// Prefork children busy with connections that last less than
		// QueueWait are free again before a connection would wait long:
		// as spares they are idle. A prefork server that grew to 50
		// children for keep-alive clients otherwise keeps them all under
		// short connections, each of which then waits for a CPU long
		// enough for every child to look busy at every tick, and costs
		// four times the CPU (docs/design.md, "Spare children").
		idle += len(t.turning)
	}
	switch {
	case idle > cfg.MaxSpare:
		st.idleSpawnRate = 1
		if cfg.KeepStartServers && t.children() <= cfg.StartServers {
			return
		}
		if cfg.Model == mpm.Event && t.occupied > len(t.active)+t.pending && cfg.ServerLimit-t.occupied <= cfg.ActiveLimit {
			// Event: children are already draining and the scoreboard
			// has no room for a graceful restart; wait for them to exit.
			return
		}
		// Retire one child a tick as Apache does, or half the children
		// beyond the maximum when there are more (prefork and worker): a
		// prefork server that grew to 50 children for keep-alive clients
		// otherwise keeps most of them for 40 s, and each short connection
		// then wakes a child that was asleep, which costs more CPU than
		// serving it (docs/design.md, "Spare children").
		n := 1
		if cfg.Model != mpm.Event {
			n = max(1, (idle-cfg.MaxSpare)/cfg.ThreadsPerChild/2)
		}
		for range n {
			if cfg.KeepStartServers && t.children() <= cfg.StartServers {
				break
			}
			slot, ok := pickRetire(t)
			if !ok {
				break
			}
			t.retire(slot, ReasonMaxSpare)
		}
	case idle < cfg.MinSpare && t.draining:
		// Every child is busy, yet the children take the waiting
		// connections within QueueWait: they keep up, and more of them
		// would serve no connection sooner. This is a machine whose CPUs
		// are the limit (short connections at full speed): Apache's rule
		// would spawn to max_request_workers, and each child more costs
		// a process switch per connection.
		st.idleSpawnRate = 1
	case idle < cfg.MinSpare:
		c.spawnSpares(t, idle)
	default:
		st.idleSpawnRate = 1
	}
}

func (c *Core) spawnSpares(t *tick, idle int) {
	st := &c.st
	cfg := t.cfg
	total := t.children()
	attrs := []string{"idle", strconv.Itoa(idle), "children", strconv.Itoa(total)}
	atMax := t.free() == 0
	if cfg.Model == mpm.Event {
		// Event compares the active threads with max_request_workers
		// before it looks at the scoreboard.
		atMax = total*cfg.ThreadsPerChild >= cfg.MaxRequestWorkers
	}
	if atMax {
		st.maxClientsReported++
		t.resp.ReachedMax = true
		switch {
		case cfg.Model == mpm.Prefork || idle == 0:
			t.log(mpm.LevelWarn, MsgReachedMax, attrs...)
		default:
			t.log(mpm.LevelWarn, MsgNearMax, attrs...)
		}
		st.idleSpawnRate = 1
		return
	}
	if t.free() == 0 {
		// Event only: draining children fill the scoreboard.
		t.log(mpm.LevelWarn, MsgScoreboard, attrs...)
		st.idleSpawnRate = 1
		return
	}
	// Never more active children than the active limit (event's
	// active_daemons_limit; below it here, as atMax caught the limit).
	n := min(t.free(), st.idleSpawnRate, cfg.ActiveLimit-total)
	if t.queued > 0 {
		// Spawn ahead of demand: connections already wait in the accept
		// queue (a prefork child, or a worker thread, holds a keep-alive
		// connection), so start at once the children that bring the idle
		// slots back to the minimum, instead of doubling the rate tick
		// after tick while the queue waits (Apache's 1, 2, 4, ... 32 takes
		// six ticks to add 50 prefork children). The spawn rate still
		// bounds spawning when nothing waits.
		need := (cfg.MinSpare - idle + cfg.ThreadsPerChild - 1) / cfg.ThreadsPerChild
		n = max(n, min(need, t.free(), cfg.ActiveLimit-total))
	}
	if n >= 8 {
		msg := MsgBusyThreaded
		if cfg.Model == mpm.Prefork {
			msg = MsgBusyPrefork
		}
		t.log(mpm.LevelInfo, fmt.Sprintf(msg, n, idle, total), append(attrs, "spawning", strconv.Itoa(n))...)
	}
	t.spawn(n, ReasonMinSpare)
	// Next time spawn twice as many if this was not enough, but not just
	// after a graceful restart.
	if st.holdOff > 0 {
		st.holdOff--
	} else if st.idleSpawnRate < MaxSpawnRate {
		st.idleSpawnRate *= 2
	}
}

// pickRetire chooses the child to retire above the maximum of spares. Apache
// lets whichever child reads the pipe of death go; phased picks one that
// loses nothing: the highest slot among ready children with no busy slot,
// else the highest starting child, else the ready child with the fewest busy
// slots (highest slot on ties). For prefork only an idle child qualifies,
// or one whose connections last less than QueueWait (turning), which
// finishes its connection and goes.
func pickRetire(t *tick) (int, bool) {
	best, bestRank, bestBusy := -1, -1, 0
	for _, ch := range t.active {
		var rank int
		busy := max(ch.BusySlots, 0)
		switch {
		case ch.State == mpm.ChildReady && (busy == 0 || t.cfg.Model == mpm.Prefork && ch.IdleSlots > 0):
			rank = 3
		case ch.State == mpm.ChildStarting:
			rank = 2
		case ch.State == mpm.ChildReady && (t.cfg.Model != mpm.Prefork || t.queued == 0 && t.turning[ch.Slot]):
			rank = 1
		default:
			continue
		}
		better := rank > bestRank ||
			rank == bestRank && rank == 1 && busy < bestBusy ||
			rank == bestRank && (rank != 1 || busy == bestBusy) && ch.Slot > best
		if better {
			best, bestRank, bestBusy = ch.Slot, rank, busy
		}
	}
	return best, best >= 0
}
