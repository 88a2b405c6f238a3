package scoreboard

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Counter names one of the master's running totals.
type Counter int

// The master's counters. They live for the master's whole life, across
// generations, so Prometheus sees counters that never reset while the
// master runs.
const (
	Spawned                Counter = iota // children started
	ExitedNormally                        // children that exited when asked to (drained, stopped)
	ExitedCrashed                         // children that exited unexpectedly with an exit status (a crash, os.Exit, a failed start), child-init aside
	RecycledSelf                          // children that retired on their own for another reason than max_connections_per_child: a signal by hand, an accept error
	RetiredByMPM                          // children the MPM retired for another reason than memory (spare children)
	Restarts                              // graceful or hard restarts that succeeded
	RestartFailures                       // restarts whose new configuration pass failed
	Accepted                              // connections the children accepted
	SlowRequests                          // requests slower than status.slow_request
	MaxChildrenReached                    // maintenance ticks that wanted more children than the MPM's limit
	ExitedSignal                          // children that died of a signal nobody asked for (a crash, kill -9)
	ExitedChildInit                       // children whose child-init hooks failed (exit status 3)
	RecycledMaxConnections                // children retired at max_connections_per_child
	RecycledMemory                        // children the MPM retired over max_memory_per_child
	RecycledCommand                       // children retired by a rolling restart (phased -k recycle)
	// MaxConnectionsReached is bumped by the children themselves, each once,
	// when it accepts the connection that reaches max_connections_per_child;
	// children of this SDK also say so in their retire request, which the
	// master counts as RecycledMaxConnections; for a plain request (an
	// older child, or one that drains without asking) the master infers
	// the cause from this counter (CountSelfRetire).
	MaxConnectionsReached
	// ConnectionsCut counts connections a child closed with a request in
	// flight or not yet read: at the end of a drain bounded by
	// graceful_shutdown_timeout, or on an immediate stop (a hard restart
	// or stop). Children bump it.
	ConnectionsCut
	// AccessLogDroppedLines counts access-log lines children lost to
	// failed writes (a full disk, an I/O error); AccessLogWriteErrors the
	// failed writes, each of which may carry many lines. Children bump
	// them.
	AccessLogDroppedLines
	AccessLogWriteErrors
	// ProxyRejected counts connections children closed on a listener with
	// proxy_protocol because they did not start with a valid PROXY header
	// (none, a malformed one, one that took longer than
	// timeouts.read_header) or came from a peer outside trusted_proxies.
	ProxyRejected
	// ConnectionsReclaimed counts connections worker and prefork children
	// closed, having sent nothing for a second, because every thread of
	// the child was held while connections waited to be accepted.
	ConnectionsReclaimed
	numCounters
)

// DurationBuckets are the upper bounds of the request-duration histogram
// children record into (Prometheus's default buckets, in seconds).
var DurationBuckets = [...]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// MaxListeners is how many listeners' accept queues the counters carry.
const MaxListeners = 16

const countersMagic = 0x7068617365644354 // "phasedCT"

type counterBlock struct {
	magic      atomic.Uint64
	counters   [numCounters]atomic.Uint64
	queue      [MaxListeners]atomic.Int64
	queueLimit [MaxListeners]atomic.Int64
	queueMax   [MaxListeners]atomic.Int64
	buckets    [len(DurationBuckets) + 1]atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	durSum     atomic.Uint64                           // nanoseconds
	children   [3]atomic.Int64                         // starting, ready, retiring, all generations
	genSeq     atomic.Uint64                           // odd while the master rewrites gens
	gens       [MaxGenerations]struct {
		num      atomic.Int64 // 0 = unused entry
		children [3]atomic.Int64
	}
}

// ChildState indexes SetChildren and Children.
type ChildState int

// The children's life stages the master publishes.
const (
	ChildStarting ChildState = iota
	ChildReady
	ChildRetiring
)

// SetChildren records how many children are starting, ready and retiring.
func (c *Counters) SetChildren(starting, ready, retiring int) {
	if c == nil {
		return
	}
	c.b.children[ChildStarting].Store(int64(starting))
	c.b.children[ChildReady].Store(int64(ready))
	c.b.children[ChildRetiring].Store(int64(retiring))
}

// MaxGenerations is how many generations' children the counters carry at
// once: the current one and those still draining.
const MaxGenerations = 8

// ChildTally counts children by generation and life stage, for
// SetGenerations. The zero value is empty; it holds MaxGenerations
// generations and drops the children of any further one.
type ChildTally struct {
	n    int
	gens [MaxGenerations]GenerationChildren
}

// GenerationChildren is how many children of one generation are in each
// life stage.
type GenerationChildren struct {
	Generation                int
	Starting, Ready, Retiring int
}

// Add counts one child of generation gen: retiring if it is, else ready if
// it is, else starting.
func (t *ChildTally) Add(gen int, ready, retiring bool) {
	i := 0
	for i < t.n && t.gens[i].Generation != gen {
		i++
	}
	if i == t.n {
		if t.n == MaxGenerations {
			return
		}
		t.n++
		t.gens[i] = GenerationChildren{Generation: gen}
	}
	g := &t.gens[i]
	switch {
	case retiring:
		g.Retiring++
	case ready:
		g.Ready++
	default:
		g.Starting++
	}
}

// SetGenerations publishes t: the children of each generation that has
// any, by life stage. Only the master calls it.
func (c *Counters) SetGenerations(t *ChildTally) {
	if c == nil {
		return
	}
	c.b.genSeq.Add(1)
	for i := range c.b.gens {
		e := &c.b.gens[i]
		var g GenerationChildren
		if i < t.n {
			g = t.gens[i]
		}
		e.num.Store(int64(g.Generation))
		e.children[ChildStarting].Store(int64(g.Starting))
		e.children[ChildReady].Store(int64(g.Ready))
		e.children[ChildRetiring].Store(int64(g.Retiring))
	}
	c.b.genSeq.Add(1)
}

// Generations returns what SetGenerations published last, in its order.
func (c *Counters) Generations() []GenerationChildren {
	if c == nil {
		return nil
	}
	var out []GenerationChildren
	for try := 0; ; try++ {
		out = out[:0]
		seq := c.b.genSeq.Load()
		for i := range c.b.gens {
			e := &c.b.gens[i]
			n := e.num.Load()
			if n == 0 {
				continue
			}
			out = append(out, GenerationChildren{Generation: int(n), Starting: int(e.children[ChildStarting].Load()),
				Ready: int(e.children[ChildReady].Load()), Retiring: int(e.children[ChildRetiring].Load())})
		}
		// A master stopped in the middle of a rewrite cannot hold readers
		// forever: after a few tries the last read stands.
		if seq%2 == 0 && c.b.genSeq.Load() == seq || try == 100 {
			return out
		}
		runtime.Gosched()
	}
}

// CountSelfRetire counts a child that retires on its own (it asked the
// master, or it drains without asking): as RecycledMaxConnections while
// more children reported reaching max_connections_per_child
// (MaxConnectionsReached) than were counted so, else as RecycledSelf. A
// child bumps MaxConnectionsReached before it asks, so each recycle lands
// in one bucket and both only grow. Only the master calls it, for requests
// that do not name their cause.
func (c *Counters) CountSelfRetire() {
	if c == nil {
		return
	}
	if c.Get(MaxConnectionsReached) > c.Get(RecycledMaxConnections) {
		c.Add(RecycledMaxConnections, 1)
	} else {
		c.Add(RecycledSelf, 1)
	}
}

// Children returns how many children are in state st.
func (c *Counters) Children(st ChildState) int {
	if c == nil || st < 0 || int(st) >= len(c.b.children) {
		return 0
	}
	return int(c.b.children[st].Load())
}

// Counters is the master's shared block of running totals: the master
// writes it, children read it to answer /metrics.
type Counters struct {
	f   *os.File
	mem []byte
	b   *counterBlock
}

// CreateCounters makes a new, zeroed counter block.
func CreateCounters() (*Counters, error) {
	fd, err := unix.MemfdCreate("phased-counters", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("creating counters: %w", err)
	}
	size := int(unsafe.Sizeof(counterBlock{}))
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("creating counters: %w", err)
	}
	_, _ = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL)
	c, err := mapCounters(os.NewFile(uintptr(fd), "phased-counters"))
	if err != nil {
		return nil, err
	}
	c.b.magic.Store(countersMagic)
	return c, nil
}

// OpenCounters maps an inherited counter block.
func OpenCounters(f *os.File) (*Counters, error) {
	c, err := mapCounters(f)
	if err != nil {
		return nil, err
	}
	if c.b.magic.Load() != countersMagic {
		c.Close()
		return nil, fmt.Errorf("opening counters: %w: wrong magic", ErrInvalid)
	}
	return c, nil
}

func mapCounters(f *os.File) (*Counters, error) {
	size := int(unsafe.Sizeof(counterBlock{}))
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("counters: %w", err)
	}
	if fi.Size() < int64(size) {
		return nil, fmt.Errorf("counters: %w: %d bytes, want %d", ErrInvalid, fi.Size(), size)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("counters: mmap: %w", err)
	}
	return &Counters{f: f, mem: mem, b: (*counterBlock)(unsafe.Pointer(&mem[0]))}, nil
}

// File returns the block's file, to pass to children.
func (c *Counters) File() *os.File { return c.f }

// Add adds n to counter k.
func (c *Counters) Add(k Counter, n uint64) {
	if c != nil && k >= 0 && k < numCounters {
		c.b.counters[k].Add(n)
	}
}

// Get returns counter k.
func (c *Counters) Get(k Counter) uint64 {
	if c == nil || k < 0 || k >= numCounters {
		return 0
	}
	return c.b.counters[k].Load()
}

// SetQueue records listener i's accept-queue depth and limit, and keeps
// the deepest queue seen (PHP-FPM's "max listen queue").
func (c *Counters) SetQueue(i, depth, limit int) {
	if c != nil && i >= 0 && i < MaxListeners {
		c.b.queue[i].Store(int64(depth))
		c.b.queueLimit[i].Store(int64(limit))
		for {
			m := c.b.queueMax[i].Load()
			if int64(depth) <= m || c.b.queueMax[i].CompareAndSwap(m, int64(depth)) {
				break
			}
		}
	}
}

// Queue returns listener i's last recorded accept-queue depth and limit.
func (c *Counters) Queue(i int) (depth, limit int) {
	if c == nil || i < 0 || i >= MaxListeners {
		return 0, 0
	}
	return int(c.b.queue[i].Load()), int(c.b.queueLimit[i].Load())
}

// MaxQueue returns the deepest accept queue listener i had.
func (c *Counters) MaxQueue(i int) int {
	if c == nil || i < 0 || i >= MaxListeners {
		return 0
	}
	return int(c.b.queueMax[i].Load())
}

// Observe records one request's duration: an atomic add to its bucket and
// to the sum, no syscall.
func (c *Counters) Observe(d time.Duration) {
	if c == nil {
		return
	}
	s := d.Seconds()
	i := 0
	for i < len(DurationBuckets) && s > DurationBuckets[i] {
		i++
	}
	c.b.buckets[i].Add(1)
	c.b.durSum.Add(uint64(max(d, 0)))
}

// Durations returns the histogram: cumulative counts per bucket of
// DurationBuckets, the total count and the sum of durations.
func (c *Counters) Durations() (cumulative []uint64, count uint64, sum time.Duration) {
	cumulative = make([]uint64, len(DurationBuckets))
	if c == nil {
		return cumulative, 0, 0
	}
	for i := range DurationBuckets {
		count += c.b.buckets[i].Load()
		cumulative[i] = count
	}
	count += c.b.buckets[len(DurationBuckets)].Load()
	return cumulative, count, time.Duration(c.b.durSum.Load())
}

// Close unmaps the block and closes its file.
func (c *Counters) Close() error {
	if c == nil || c.mem == nil {
		return nil
	}
	err := unix.Munmap(c.mem)
	c.mem = nil
	return errors.Join(err, c.f.Close())
}

// ExitCounter returns the counter a child's unexpected exit adds to:
// ExitedSignal when a signal ended it, ExitedChildInit when it exited with
// childInitStatus (sdk/child's ExitChildInit: its child-init hooks failed),
// else ExitedCrashed.
func ExitCounter(st *os.ProcessState, childInitStatus int) Counter {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ExitedSignal
	}
	if st.ExitCode() == childInitStatus {
		return ExitedChildInit
	}
	return ExitedCrashed
}

// ReasonMemory is the reason phased's MPMs give a retire over
// max_memory_per_child (mpm.Action.Reason).
const ReasonMemory = "memory"

// RetireCounter returns the counter an MPM's retire for reason adds to:
// RecycledMemory for ReasonMemory, else RetiredByMPM.
func RetireCounter(reason string) Counter {
	if reason == ReasonMemory {
		return RecycledMemory
	}
	return RetiredByMPM
}
