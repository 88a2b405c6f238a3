package scoreboard

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// ProcSlot is the record of one child process slot, living in the shared
// segment; get one with Board.Proc. The master writes the pid and generation
// when it spawns a child into the slot; the child (or the master) writes the
// state and the quiescing flag. Every field is read and written atomically,
// so any process may read it at any time. A ProcSlot must not be copied.
type ProcSlot struct {
	pid        atomic.Int64
	generation atomic.Int64
	state      atomic.Uint32
	quiescing  atomic.Uint32
	startTime  atomic.Int64 // unix nanoseconds, 0 = unset
	full       atomic.Uint32
	acceptWait atomic.Uint32 // an AcceptWait
	conns      atomic.Int64
	appPID     atomic.Int64 // the app server the child owns, 0 = none
	acceptBeat atomic.Int64 // unix nanoseconds of the last SetAcceptWait
	// The connections the child holds by what they do (AddConnState).
	connReading, connWriting, connKeepAlive, connClosing atomic.Int64
	accepted                                             atomic.Uint64
	// tunnels: connections taken over by their handler (AddTunnels).
	tunnels atomic.Int64
	_       [16]byte
}

// AcceptWait is what a child's accept loop is doing, as it records it with
// SetAcceptWait.
type AcceptWait uint32

const (
	// NotAccepting: the child waits for no connection (it serves, waits
	// for the accept lock, or does not record its accept loop).
	NotAccepting AcceptWait = iota
	// AcceptWaiting: the child waits for a connection, holding no lock.
	AcceptWaiting
	// AcceptHoldingLock: the child waits for a connection holding the
	// accept mutex; no sibling accepts on that socket meanwhile.
	AcceptHoldingLock
)

// ProcInfo is a copy of a ProcSlot, taken by ProcSlot.Snapshot.
type ProcInfo struct {
	// PID is the child's process id; 0 means no process holds the slot.
	PID int
	// Generation is the generation of the child in the slot.
	Generation int
	// State is the process's own state (Starting, Idle, Graceful, ...).
	State State
	// Quiescing reports whether the child is retiring: it no longer accepts
	// connections and its workers do not count as idle or busy.
	Quiescing bool
	// Full reports whether the child holds as many connections as it may
	// (the event model's limit): until one closes it accepts none, so its
	// idle workers are no spare capacity for the MPM (Apache's
	// not_accepting).
	Full bool
	// StartTime is when the pid was recorded; the zero Time if unset.
	StartTime time.Time
	// Conns is how many connections the child holds: accepted and not yet
	// closed, whether a worker serves them or they wait for their next
	// request (mod_status's ConnsTotal, which Apache's event children also
	// count as they go).
	Conns int
	// AppPID is the app server the child owns (app.type http or fastcgi);
	// 0 when it owns none.
	AppPID int
	// AcceptWait is what the child's accept loop was doing when it last
	// said so, at AcceptBeat.
	AcceptWait AcceptWait
	// AcceptBeat is when the child last recorded its accept loop; a child
	// that waits for connections records it about ten times a second, so
	// an old AcceptBeat with AcceptWait set means a child that is stopped
	// or wedged in its accept loop. The zero Time if never recorded.
	AcceptBeat time.Time
	// ConnsReading, ConnsWriting, ConnsKeepAlive and ConnsClosing count
	// the connections the child holds by what they do (see
	// ProcSlot.AddConnState); a connection a worker serves is in none.
	ConnsReading, ConnsWriting, ConnsKeepAlive, ConnsClosing int
	// Tunnels counts the connections the child's handlers took over (a
	// WebSocket after its 101; ProcSlot.AddTunnels), which hold no worker.
	Tunnels int
	// Accepted is how many connections the process in the slot has
	// accepted (from zero when SetPID records a new process).
	Accepted uint64
}

// SetAcceptWait records what the child's accept loop is doing, and the
// time as its AcceptBeat.
func (p *ProcSlot) SetAcceptWait(w AcceptWait) {
	p.acceptBeat.Store(time.Now().UnixNano())
	p.acceptWait.Store(uint32(w))
}

// SetPID records pid as the process holding the slot and the current time as
// its start time. SetPID(0) clears both.
func (p *ProcSlot) SetPID(pid int) {
	var now int64
	if pid != 0 {
		now = time.Now().UnixNano()
	}
	p.startTime.Store(now)
	p.accepted.Store(0)
	p.pid.Store(int64(pid))
}

// PID returns the pid of the process holding the slot, 0 if none.
func (p *ProcSlot) PID() int { return int(p.pid.Load()) }

// Accepted is how many connections the process in the slot has accepted.
func (p *ProcSlot) Accepted() uint64 { return p.accepted.Load() }

// SetGeneration records the generation of the child in the slot.
func (p *ProcSlot) SetGeneration(g int) { p.generation.Store(int64(g)) }

// Generation returns the generation of the child in the slot.
func (p *ProcSlot) Generation() int { return int(p.generation.Load()) }

// SetState records the state of the process as a whole.
func (p *ProcSlot) SetState(s State) { p.state.Store(uint32(s)) }

// State returns the state of the process as a whole.
func (p *ProcSlot) State() State { return State(p.state.Load()) }

// SetQuiescing records whether the child is retiring (Apache's quiescing
// flag): set when it stops accepting, before it drains.
func (p *ProcSlot) SetQuiescing(q bool) {
	var v uint32
	if q {
		v = 1
	}
	p.quiescing.Store(v)
}

// Quiescing reports whether the child in the slot is retiring.
func (p *ProcSlot) Quiescing() bool { return p.quiescing.Load() != 0 }

// SetFull records whether the child holds as many connections as it may
// and therefore accepts none for now.
func (p *ProcSlot) SetFull(f bool) {
	var v uint32
	if f {
		v = 1
	}
	p.full.Store(v)
}

// SetAppPID records the app server the child in the slot owns; 0 = none.
func (p *ProcSlot) SetAppPID(pid int) { p.appPID.Store(int64(pid)) }

// AppPID returns the app server the child in the slot owns, 0 if none.
func (p *ProcSlot) AppPID() int { return int(p.appPID.Load()) }

// Full reports whether the child in the slot is at its connection limit.
func (p *ProcSlot) Full() bool { return p.full.Load() != 0 }

// Opened records a connection the child in the slot accepted: one more it
// holds (the status page's ConnsTotal) and one more it has accepted (the
// MPM's accept rate).
func (p *ProcSlot) Opened() {
	p.conns.Add(1)
	p.accepted.Add(1)
}

// Closed records that one of the child's connections closed.
func (p *ProcSlot) Closed() { p.conns.Add(-1) }

// AddConnState adds n (negative to remove) to the child's connections in
// state st: Reading (waiting for, or reading, a request's header), Writing
// (writing a response no worker holds any more), KeepAlive (idle between
// requests) or Closing; other states are not counted. An event child counts
// here what holds no worker, as Apache's event MPM counts its asynchronous
// connections for mod_status; a worker or prefork child counts its
// connections too, though each also shows on its worker.
func (p *ProcSlot) AddConnState(st State, n int) {
	switch st {
	case Reading:
		p.connReading.Add(int64(n))
	case Writing:
		p.connWriting.Add(int64(n))
	case KeepAlive:
		p.connKeepAlive.Add(int64(n))
	case Closing:
		p.connClosing.Add(int64(n))
	}
}

// AddTunnels adds n (negative to remove) to the child's tunnels: the
// connections an event child's handlers took over (a WebSocket after its
// 101), which hold no worker.
func (p *ProcSlot) AddTunnels(n int) { p.tunnels.Add(int64(n)) }

// Conns returns how many connections the child in the slot holds.
func (p *ProcSlot) Conns() int { return int(max(p.conns.Load(), 0)) }

// StartTime returns when SetPID recorded the current pid; the zero Time if
// the slot is empty.
func (p *ProcSlot) StartTime() time.Time { return unixTime(p.startTime.Load()) }

// Snapshot returns a copy of the record. Each field is read atomically; the
// fields are not read as one unit (they change rarely, and each has a single
// meaning on its own).
func (p *ProcSlot) Snapshot() ProcInfo {
	return ProcInfo{
		PID:        p.PID(),
		Generation: p.Generation(),
		State:      p.State(),
		Quiescing:  p.Quiescing(),
		Full:       p.Full(),
		StartTime:  p.StartTime(),
		Conns:      p.Conns(),
		AppPID:     p.AppPID(),
		AcceptWait: AcceptWait(p.acceptWait.Load()),
		AcceptBeat: unixTime(p.acceptBeat.Load()),

		ConnsReading:   int(max(p.connReading.Load(), 0)),
		ConnsWriting:   int(max(p.connWriting.Load(), 0)),
		ConnsKeepAlive: int(max(p.connKeepAlive.Load(), 0)),
		ConnsClosing:   int(max(p.connClosing.Load(), 0)),
		Tunnels:        int(max(p.tunnels.Load(), 0)),
		Accepted:       p.accepted.Load(),
	}
}

// WorkerSlot is the record of one worker (one thread of a worker child, or
// the single worker of a prefork child), living in the shared segment; get
// one with Board.Worker. It is three whole cache lines, so workers updating
// neighbouring slots do not slow each other down. A WorkerSlot must not be
// copied.
//
// Exactly one goroutine at a time may write a slot (StartConn, StartRequest,
// EndRequest): the worker that owns it, in the child that owns the process
// slot. SetState may be called by the owner at any time. Any number of
// goroutines, in any process, may read it. Writers and readers use only
// atomic loads and stores on the shared memory: no lock, no system call, no
// allocation.
//
// The request line, the client's address, the request start time and the
// counters are guarded by
// a sequence lock: the writer makes seq odd, writes, and makes it even again;
// a reader retries until it read the same even seq before and after. So
// Snapshot never returns half of one request line and half of another. The
// one exception is a writer stuck in the middle of an update for over 100ms
// (stopped, or dead and not yet reaped): readers then stop waiting for it
// and return what they read, and Board.ClearProc repairs the slot once the
// master has reaped the process.
type WorkerSlot struct {
	seq       atomic.Uint64 // odd while the owner writes
	state     atomic.Uint32
	lineLen   atomic.Uint32
	requests  atomic.Uint64
	bytes     atomic.Uint64
	connCount atomic.Uint64
	lastUsed  atomic.Int64 // unix nanoseconds, 0 = never
	reqStart  atomic.Int64 // unix nanoseconds, 0 = never
	lastDur   atomic.Int64 // nanoseconds
	line      [lineWords]atomic.Uint64
	client    [2]atomic.Uint64 // the client's address, 16 bytes (IPv4 mapped); zero = unknown
	_         [48]byte
}

// WorkerInfo is a consistent copy of a WorkerSlot, taken by
// WorkerSlot.Snapshot or Board.Snapshot.
type WorkerInfo struct {
	// State is what the worker is doing.
	State State
	// Requests is the number of requests the slot has served, across every
	// process that held it in this generation (Apache's access_count).
	Requests uint64
	// Bytes is the number of response bytes the slot has sent, likewise.
	Bytes uint64
	// LastUsed is when the last request ended; the zero Time if none has.
	LastUsed time.Time
	// RequestStart is when the current request, or the last one if the
	// worker is between requests, started; the zero Time if none has.
	RequestStart time.Time
	// LastDuration is how long the last finished request took.
	LastDuration time.Duration
	// RequestLine is the current (or last) request line,
	// "METHOD URI PROTO", cut to 64 bytes.
	RequestLine string
	// ConnCount is the number of requests served on the current
	// connection (reset by StartConn).
	ConnCount uint64
	// Client is the address of the client of the current (or last)
	// request (mod_status's Client): the real one when a proxy said who
	// it was (PROXY protocol, a trusted X-Forwarded-For). The zero Addr
	// if unknown.
	Client netip.Addr
}

// SetState records what the worker is doing.
func (w *WorkerSlot) SetState(s State) { w.state.Store(uint32(s)) }

// State returns what the worker is doing.
func (w *WorkerSlot) State() State { return State(w.state.Load()) }

// beginWrite makes seq odd and returns the odd value. A seq left odd by a
// writer that died mid-update is moved on to the next odd value, so readers
// never mistake the new write for a stable record.
func (w *WorkerSlot) beginWrite() uint64 {
	s := (w.seq.Load() + 1) | 1
	w.seq.Store(s)
	return s
}

// endWrite publishes the update started by beginWrite.
func (w *WorkerSlot) endWrite(s uint64) { w.seq.Store(s + 1) }

// StartConn records that the worker took a new connection: ConnCount starts
// again from zero. Only the slot's owner may call it.
func (w *WorkerSlot) StartConn() {
	s := w.beginWrite()
	w.connCount.Store(0)
	w.endWrite(s)
}

// StartRequest records that the worker began handling a request at now
// from client: the state becomes Writing (Apache's SERVER_BUSY_WRITE: the
// request has been read and the reply is under way), and the start time,
// the client's address (the zero Addr when unknown) and the request line
// "method uri proto" are recorded. The line is cut to 64 bytes, at a UTF-8
// boundary. Only the slot's owner may call it; it neither allocates nor
// makes a system call.
func (w *WorkerSlot) StartRequest(now time.Time, client netip.Addr, method, uri, proto string) {
	var buf [lineSize]byte
	n := copy(buf[:], method)
	n += copy(buf[n:], " ")
	n += copy(buf[n:], uri)
	full := len(method) + 1 + len(uri)
	if proto != "" {
		n += copy(buf[n:], " ")
		n += copy(buf[n:], proto)
		full += 1 + len(proto)
	}
	if full > lineSize {
		// Cut: do not end on part of a multi-byte UTF-8 sequence.
		if k := lastRuneStart(buf[:n]); k >= 0 && !utf8.FullRune(buf[k:n]) {
			n = k
		}
	}
	var ip [16]byte
	if client.IsValid() {
		ip = client.As16()
	}
	s := w.beginWrite()
	w.reqStart.Store(now.UnixNano())
	w.client[0].Store(binary.LittleEndian.Uint64(ip[:8]))
	w.client[1].Store(binary.LittleEndian.Uint64(ip[8:]))
	for i := 0; i < (n+7)/8; i++ {
		w.line[i].Store(binary.LittleEndian.Uint64(buf[i*8:]))
	}
	w.lineLen.Store(uint32(n))
	w.endWrite(s)
	w.state.Store(uint32(Writing))
}

// lastRuneStart returns the index of the last byte in b that starts a UTF-8
// sequence, looking back at most utf8.UTFMax bytes, or -1.
func lastRuneStart(b []byte) int {
	for k := len(b) - 1; k >= 0 && k >= len(b)-utf8.UTFMax; k-- {
		if utf8.RuneStart(b[k]) {
			return k
		}
	}
	return -1
}

// EndRequest records that the request begun by StartRequest finished at now
// after sending bytes response bytes: Requests and ConnCount grow by one,
// Bytes by bytes, LastUsed becomes now and LastDuration the time since the
// request started. It leaves the state alone: the caller moves on to
// KeepAlive, Closing or Idle. Only the slot's owner may call it; it neither
// allocates nor makes a system call.
func (w *WorkerSlot) EndRequest(now time.Time, bytes int64) {
	t := now.UnixNano()
	s := w.beginWrite()
	var d int64
	if start := w.reqStart.Load(); start != 0 {
		d = t - start
	}
	w.requests.Add(1)
	w.connCount.Add(1)
	if bytes > 0 {
		w.bytes.Add(uint64(bytes))
	}
	w.lastUsed.Store(t)
	w.lastDur.Store(d)
	w.endWrite(s)
}

// A reader that finds the owner in the middle of an update spins readSpins
// times, then yields the processor between tries; if the owner's sequence
// number stays in the middle of the same update for readPatience (the owner
// was stopped, or died and has not been reaped yet), it stops waiting and
// returns what it read.
const (
	readSpins    = 16
	readPatience = 100 * time.Millisecond
)

// read copies the slot into info and the request line into line, returning
// the line's length.
func (w *WorkerSlot) read(info *WorkerInfo, line *[lineSize]byte) int {
	var giveUp time.Time
	var watched uint64
	stuck := false
	for try := 0; ; try++ {
		s1 := w.seq.Load()
		if s1&1 == 0 || stuck {
			info.State = State(w.state.Load())
			info.Requests = w.requests.Load()
			info.Bytes = w.bytes.Load()
			info.ConnCount = w.connCount.Load()
			info.LastUsed = unixTime(w.lastUsed.Load())
			info.RequestStart = unixTime(w.reqStart.Load())
			info.LastDuration = time.Duration(w.lastDur.Load())
			c0, c1 := w.client[0].Load(), w.client[1].Load()
			info.Client = netip.Addr{}
			if c0|c1 != 0 {
				var ip [16]byte
				binary.LittleEndian.PutUint64(ip[:8], c0)
				binary.LittleEndian.PutUint64(ip[8:], c1)
				info.Client = netip.AddrFrom16(ip).Unmap()
			}
			n := min(int(w.lineLen.Load()), lineSize)
			for i := 0; i < (n+7)/8; i++ {
				binary.LittleEndian.PutUint64(line[i*8:], w.line[i].Load())
			}
			if w.seq.Load() == s1 || stuck {
				return n
			}
		}
		if try < readSpins {
			continue
		}
		runtime.Gosched()
		if try%64 == 0 {
			// Give up only on a writer that stopped mid-update (a dead or
			// frozen child): its sequence number stays the same odd value.
			// A live writer moves it on, and a later try will succeed.
			now := time.Now()
			if s1 != watched || giveUp.IsZero() {
				watched, giveUp = s1, now.Add(readPatience)
			} else if now.After(giveUp) {
				stuck = true
			}
		}
	}
}

// Snapshot returns a consistent copy of the slot: the request line, its
// start time and the counters all come from the same moment between two
// updates by the owner.
func (w *WorkerSlot) Snapshot() WorkerInfo {
	var info WorkerInfo
	var line [lineSize]byte
	n := w.read(&info, &line)
	info.RequestLine = string(line[:n])
	return info
}

// unixTime converts unix nanoseconds to a Time, 0 to the zero Time.
func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
