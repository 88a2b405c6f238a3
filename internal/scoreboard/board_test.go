package scoreboard

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// newBoard creates a real memfd-backed board and closes it when the test
// ends.
func newBoard(t testing.TB, procs, threads int) *Board {
	t.Helper()
	b, err := Create("phased-test", procs, threads)
	if err != nil {
		t.Fatalf("Create(%d, %d): %v", procs, threads, err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// newHeapBoard builds a board on ordinary Go memory. The race detector only
// watches Go-allocated memory, not an mmapped segment, so tests that want
// -race to check the package's memory accesses run on this kind of board
// too.
func newHeapBoard(t testing.TB, procs, threads int) *Board {
	t.Helper()
	size, err := segmentSize(procs, threads)
	if err != nil {
		t.Fatal(err)
	}
	words := make([]uint64, size/8) // 8-byte aligned, as the atomics need
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), size)
	format(mem, procs, threads)
	b, err := attach(mem)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStates(t *testing.T) {
	tests := []struct {
		s      State
		letter byte
		name   string
	}{
		{Dead, '.', "dead"},
		{Starting, 'S', "starting"},
		{Idle, '_', "idle"},
		{Reading, 'R', "reading"},
		{Writing, 'W', "writing"},
		{KeepAlive, 'K', "keepalive"},
		{Logging, 'L', "logging"},
		{Closing, 'C', "closing"},
		{Graceful, 'G', "graceful"},
		{IdleKill, 'I', "idlekill"},
		{NumStates, '?', "State(10)"},
		{State(1 << 31), '?', "State(2147483648)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.Letter(); got != tt.letter {
				t.Errorf("Letter() = %q, want %q", got, tt.letter)
			}
			if got := tt.s.String(); got != tt.name {
				t.Errorf("String() = %q, want %q", got, tt.name)
			}
			if got, want := tt.s.Valid(), tt.letter != '?'; got != want {
				t.Errorf("Valid() = %v, want %v", got, want)
			}
		})
	}
}

func TestLayout(t *testing.T) {
	b := newBoard(t, 3, 5)
	if got := len(b.mem); got != 64+3*128+15*192 {
		t.Errorf("segment is %d bytes", got)
	}
	for i := 0; i < 3; i++ {
		if p := uintptr(unsafe.Pointer(b.Proc(i))); p%64 != 0 {
			t.Errorf("Proc(%d) at %#x, not on a cache line", i, p)
		}
		for j := 0; j < 5; j++ {
			if p := uintptr(unsafe.Pointer(b.Worker(i, j))); p%64 != 0 {
				t.Errorf("Worker(%d,%d) at %#x, not on a cache line", i, j, p)
			}
		}
	}
	first := uintptr(unsafe.Pointer(b.Worker(0, 0)))
	if last := uintptr(unsafe.Pointer(b.Worker(2, 4))); last+192 != uintptr(unsafe.Pointer(&b.mem[0]))+uintptr(len(b.mem)) {
		t.Errorf("last worker does not end the segment")
	} else if last-first != 14*192 {
		t.Errorf("workers are not contiguous, proc-major")
	}
	target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(b.File().Fd())))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(target, "/memfd:phased-test") {
		t.Errorf("fd points at %q, want a memfd", target)
	}
}

func TestCreateErrors(t *testing.T) {
	tests := []struct {
		name           string
		procs, threads int
		want           string
	}{
		{"zero procs", 0, 1, "must be positive"},
		{"negative threads", 1, -1, "must be positive"},
		{"huge", 1 << 20, 1 << 20, "exceed"},
		{"long name", 1, 1, "memfd_create"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "x"
			if tt.name == "long name" {
				name = strings.Repeat("n", 300)
			}
			b, err := Create(name, tt.procs, tt.threads)
			if err == nil {
				b.Close()
				t.Fatal("Create succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestBoardReadWrite(t *testing.T) {
	b := newBoard(t, 3, 4)
	if b.Procs() != 3 || b.ThreadsPerProc() != 4 {
		t.Fatalf("geometry %dx%d, want 3x4", b.Procs(), b.ThreadsPerProc())
	}
	if got := b.Snapshot().Letters(); got != "............" {
		t.Fatalf("fresh board letters %q", got)
	}
	b.SetGeneration(2)

	t0 := time.Unix(1700000000, 123456789)
	p := b.Proc(0)
	p.SetGeneration(2)
	p.SetPID(4242)
	p.SetState(Idle)
	if p.PID() != 4242 || p.Generation() != 2 || p.State() != Idle || p.Quiescing() {
		t.Errorf("proc 0 reads back %+v", p.Snapshot())
	}
	if st := p.StartTime(); time.Since(st) > time.Minute || st.IsZero() {
		t.Errorf("StartTime = %v, want about now", st)
	}

	w := b.Worker(0, 1)
	w.SetState(Idle)
	w.StartConn()
	w.StartRequest(t0, netip.Addr{}, "GET", "/index.html?q=1", "HTTP/1.1")
	if w.State() != Writing {
		t.Errorf("state after StartRequest = %v, want writing", w.State())
	}
	mid := w.Snapshot()
	if mid.RequestLine != "GET /index.html?q=1 HTTP/1.1" || !mid.RequestStart.Equal(t0) || mid.Requests != 0 {
		t.Errorf("during the request: %+v", mid)
	}
	w.EndRequest(t0.Add(5*time.Millisecond), 1234)
	w.SetState(KeepAlive)
	w.StartRequest(t0.Add(time.Second), netip.MustParseAddr("192.0.2.7"), "POST", "/form", "HTTP/1.1")
	w.EndRequest(t0.Add(time.Second+2*time.Millisecond), 10)
	w.SetState(KeepAlive)

	got := w.Snapshot()
	want := WorkerInfo{
		State:        KeepAlive,
		Requests:     2,
		Bytes:        1244,
		LastUsed:     t0.Add(time.Second + 2*time.Millisecond),
		RequestStart: t0.Add(time.Second),
		LastDuration: 2 * time.Millisecond,
		RequestLine:  "POST /form HTTP/1.1",
		ConnCount:    2,
		Client:       netip.MustParseAddr("192.0.2.7"),
	}
	if !equalInfo(got, want) {
		t.Errorf("Snapshot() =\n  %+v\nwant\n  %+v", got, want)
	}
	w.StartConn()
	if c := w.Snapshot().ConnCount; c != 0 {
		t.Errorf("ConnCount after StartConn = %d", c)
	}

	// The rest of a mixed board.
	b.Worker(0, 0).SetState(Idle)
	b.Worker(0, 2).SetState(Reading)
	b.Worker(0, 3).SetState(Idle)
	p1 := b.Proc(1)
	p1.SetPID(4243)
	p1.SetGeneration(2)
	p1.SetState(Starting)
	b.Worker(1, 0).SetState(Starting)
	b.Worker(1, 1).SetState(Logging)
	b.Worker(1, 2).SetState(Closing)
	b.Worker(1, 3).SetState(Graceful)
	// Proc 2 is empty but a worker slot says Writing: Letters shows it,
	// Summary does not count it (its process slot has no pid).
	b.Worker(2, 3).SetState(Writing)

	snap := b.Snapshot()
	if snap.Generation != 2 || len(snap.Procs) != 3 || len(snap.Workers) != 3 || len(snap.Workers[1]) != 4 {
		t.Fatalf("snapshot shape: generation %d, %d procs, %d rows", snap.Generation, len(snap.Procs), len(snap.Workers))
	}
	if got := snap.Letters(); got != "_KR_SLCG...W" {
		t.Errorf("Letters() = %q, want %q", got, "_KR_SLCG...W")
	}
	if !equalInfo(snap.Workers[0][1], w.Snapshot()) {
		t.Errorf("board snapshot of (0,1) = %+v, slot snapshot %+v", snap.Workers[0][1], w.Snapshot())
	}
	if snap.Procs[0].PID != 4242 || snap.Procs[1].State != Starting {
		t.Errorf("procs %+v", snap.Procs)
	}
	sum := snap.Summary()
	wantSum := Summary{
		Idle: 2, Busy: 4, Graceful: 1, Procs: 2, Slots: 12, Requests: 2, Bytes: 1244,
	}
	wantSum.ByState[Dead] = 3
	wantSum.ByState[Idle] = 2
	wantSum.ByState[KeepAlive] = 1
	wantSum.ByState[Reading] = 1
	wantSum.ByState[Starting] = 1
	wantSum.ByState[Logging] = 1
	wantSum.ByState[Closing] = 1
	wantSum.ByState[Graceful] = 1
	wantSum.ByState[Writing] = 1
	if sum != wantSum {
		t.Errorf("Summary() =\n  %+v\nwant\n  %+v", sum, wantSum)
	}
}

func equalInfo(a, b WorkerInfo) bool {
	return a.State == b.State && a.Requests == b.Requests && a.Bytes == b.Bytes &&
		a.LastUsed.Equal(b.LastUsed) && a.RequestStart.Equal(b.RequestStart) &&
		a.LastDuration == b.LastDuration && a.RequestLine == b.RequestLine && a.ConnCount == b.ConnCount &&
		a.Client == b.Client
}

// TestClient: the client's address goes with the request: IPv4 as IPv4,
// IPv6 as IPv6, unknown as the zero Addr, and each request replaces the
// last one's.
func TestClient(t *testing.T) {
	b := newBoard(t, 1, 1)
	w := b.Worker(0, 0)
	for _, c := range []string{"192.0.2.7", "2001:db8::1", "::ffff:10.0.0.1", ""} {
		var a netip.Addr
		if c != "" {
			a = netip.MustParseAddr(c)
		}
		w.StartRequest(time.Now(), a, "GET", "/", "HTTP/1.1")
		want := a.Unmap()
		if got := w.Snapshot().Client; got != want {
			t.Errorf("client %q reads back %v, want %v", c, got, want)
		}
	}
}

// TestHealth: the master's word to children, stopping and its heartbeat,
// is in the header, seen through another mapping of the segment.
func TestHealth(t *testing.T) {
	b, err := Create("health", 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dup, err := dupFile(b.File())
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(dup)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Stopping() || !c.Heartbeat().IsZero() {
		t.Fatalf("a new board: stopping %v, heartbeat %v", c.Stopping(), c.Heartbeat())
	}
	now := time.Unix(1700000000, 123)
	b.Beat(now)
	if got := c.Heartbeat(); !got.Equal(now) {
		t.Errorf("heartbeat %v, want %v", got, now)
	}
	b.SetStopping()
	b.SetStopping()
	if !c.Stopping() {
		t.Error("SetStopping not seen")
	}
	if c.Generation() != 0 {
		t.Error("SetStopping touched the generation")
	}
}

// TestSummaryRules replays mod_status's rules for idle and busy workers.
func TestSummaryRules(t *testing.T) {
	live := ProcInfo{PID: 10, Generation: 3}
	tests := []struct {
		name                 string
		proc                 ProcInfo
		states               []State
		idle, busy, graceful int
	}{
		{"idle and busy", live, []State{Idle, Idle, Writing, Reading, KeepAlive}, 2, 3, 0},
		{"starting, dead and idle-kill are neither", live, []State{Starting, Dead, IdleKill}, 0, 0, 0},
		{"logging, closing are busy; graceful is graceful", live, []State{Graceful, Logging, Closing}, 0, 2, 1},
		{"no pid: nothing counts", ProcInfo{Generation: 3}, []State{Idle, Writing}, 0, 0, 0},
		{"quiescing: nothing counts", ProcInfo{PID: 10, Generation: 3, Quiescing: true}, []State{Idle, Writing, Graceful}, 0, 0, 0},
		{"old generation: busy but never idle", ProcInfo{PID: 10, Generation: 2}, []State{Idle, Writing}, 0, 1, 0},
		{"invalid state counts as busy", live, []State{State(99)}, 0, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := make([]WorkerInfo, len(tt.states))
			for i, s := range tt.states {
				ws[i] = WorkerInfo{State: s, Requests: 1, Bytes: 100}
			}
			snap := Snapshot{Generation: 3, Procs: []ProcInfo{tt.proc}, Workers: [][]WorkerInfo{ws}}
			sum := snap.Summary()
			if sum.Idle != tt.idle || sum.Busy != tt.busy || sum.Graceful != tt.graceful {
				t.Errorf("idle %d busy %d graceful %d, want %d %d %d", sum.Idle, sum.Busy, sum.Graceful, tt.idle, tt.busy, tt.graceful)
			}
			if sum.Slots != len(tt.states) || sum.Requests != uint64(len(tt.states)) || sum.Bytes != 100*uint64(len(tt.states)) {
				t.Errorf("totals %+v", sum)
			}
		})
	}
}

func TestRequestLine(t *testing.T) {
	long := "/" + strings.Repeat("a", 100)
	tests := []struct {
		name, method, uri, proto, want string
	}{
		{"plain", "GET", "/", "HTTP/1.1", "GET / HTTP/1.1"},
		{"http/0.9 has no proto", "GET", "/x", "", "GET /x"},
		{"exactly 64", "GET", "/" + strings.Repeat("b", 50), "HTTP/1.1", "GET /" + strings.Repeat("b", 50) + " HTTP/1.1"},
		{"cut at 64", "GET", long, "HTTP/1.1", ("GET " + long)[:64]},
		{"cut inside the proto", "GET", "/" + strings.Repeat("c", 55), "HTTP/1.1", "GET /" + strings.Repeat("c", 55) + " HTT"},
		// "é" is two bytes; the second would be byte 65, so the rune goes.
		{"cut before a split rune", "GET", "/" + strings.Repeat("d", 58) + "é", "HTTP/1.1", "GET /" + strings.Repeat("d", 58)},
		// "€" is three bytes, two of them fit: both go.
		{"cut before a split 3-byte rune", "GET", "/" + strings.Repeat("e", 57) + "€x", "HTTP/1.1", "GET /" + strings.Repeat("e", 57)},
		{"whole rune at the end stays", "GET", "/" + strings.Repeat("f", 57) + "é", "HTTP/1.1", "GET /" + strings.Repeat("f", 57) + "é"},
		{"empty", "", "", "", " "},
	}
	b := newBoard(t, 1, 1)
	w := b.Worker(0, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A longer line first, so leftovers would show.
			w.StartRequest(time.Now(), netip.Addr{}, "GET", long, "HTTP/1.1")
			w.StartRequest(time.Now(), netip.Addr{}, tt.method, tt.uri, tt.proto)
			got := w.Snapshot().RequestLine
			if got != tt.want {
				t.Errorf("line %q (%d bytes), want %q", got, len(got), tt.want)
			}
			if len(got) > 64 {
				t.Errorf("line is %d bytes", len(got))
			}
		})
	}
}

func TestClearProc(t *testing.T) {
	b := newBoard(t, 2, 2)
	p := b.Proc(1)
	p.SetPID(77)
	p.SetGeneration(1)
	p.SetState(Graceful)
	p.SetQuiescing(true)
	for range 3 {
		p.Opened()
	}
	p.Closed()
	if pi := p.Snapshot(); pi.Conns != 2 {
		t.Fatalf("Conns = %d after 3 accepted and 1 closed, want 2", pi.Conns)
	}
	w := b.Worker(1, 0)
	w.StartRequest(time.Now(), netip.Addr{}, "GET", "/last", "HTTP/1.1")
	w.EndRequest(time.Now(), 5)
	b.Worker(1, 1).SetState(Idle)
	// The child died between the two halves of an update.
	w.beginWrite()

	b.ClearProc(1)
	pi := p.Snapshot()
	if pi.PID != 0 || pi.State != Dead || pi.Quiescing || !pi.StartTime.IsZero() || pi.Generation != 1 || pi.Conns != 0 {
		t.Errorf("cleared proc %+v", pi)
	}
	if got := b.Snapshot().Letters(); got != "...." {
		t.Errorf("letters %q", got)
	}
	done := make(chan WorkerInfo)
	go func() { done <- w.Snapshot() }()
	select {
	case wi := <-done:
		if wi.Requests != 1 || wi.Bytes != 5 || wi.RequestLine != "GET /last HTTP/1.1" {
			t.Errorf("slot history lost: %+v", wi)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Snapshot of a cleared slot does not return")
	}
}

// TestStuckWriter shows a reader does not hang on a slot whose writer
// stopped in the middle of an update (SIGSTOP, or died and not yet reaped).
func TestStuckWriter(t *testing.T) {
	b := newHeapBoard(t, 1, 1)
	w := b.Worker(0, 0)
	w.StartRequest(time.Now(), netip.Addr{}, "GET", "/", "HTTP/1.1")
	w.beginWrite()
	start := time.Now()
	if got := w.Snapshot().RequestLine; got != "GET / HTTP/1.1" {
		t.Errorf("line %q", got)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Snapshot took %v", d)
	}
	// The next write by a new owner must not look stable half-way.
	s := w.beginWrite()
	if s&1 == 0 {
		t.Errorf("beginWrite after a stuck writer gave even seq %d", s)
	}
	w.endWrite(s)
	if w.seq.Load()&1 != 0 {
		t.Error("seq odd after endWrite")
	}
}

func TestOpen(t *testing.T) {
	b := newBoard(t, 2, 3)
	b.Worker(1, 2).StartRequest(time.Unix(5, 0), netip.Addr{}, "GET", "/shared", "HTTP/1.1")

	// Open a second mapping through the memfd's /proc link, as a child
	// would through its inherited descriptor.
	f, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(b.File().Fd())), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(f)
	if err != nil {
		f.Close()
		t.Fatalf("Open: %v", err)
	}
	defer c.Close()
	if c.Procs() != 2 || c.ThreadsPerProc() != 3 {
		t.Errorf("geometry %dx%d", c.Procs(), c.ThreadsPerProc())
	}
	if got := c.Worker(1, 2).Snapshot().RequestLine; got != "GET /shared HTTP/1.1" {
		t.Errorf("second mapping reads %q", got)
	}
	c.Worker(0, 0).SetState(Writing)
	if got := b.Worker(0, 0).State(); got != Writing {
		t.Errorf("first mapping reads %v", got)
	}
	if c.File() != f {
		t.Error("File() is not the opened file")
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := f.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("file not closed by Close: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	valid := func() []byte {
		size, _ := segmentSize(2, 2)
		words := make([]uint64, size/8)
		mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), size)
		format(mem, 2, 2)
		return mem
	}
	patch := func(off int, val uint32) func([]byte) []byte {
		return func(m []byte) []byte {
			*(*uint32)(unsafe.Pointer(&m[off])) = val
			return m
		}
	}
	tests := []struct {
		name    string
		content func([]byte) []byte // nil: use the file as given by open
		open    func(t *testing.T, path string) *os.File
		invalid bool // want errors.Is(err, ErrInvalid)
		want    string
	}{
		{name: "empty file", content: func([]byte) []byte { return nil }, invalid: true, want: "smaller than the 64-byte header"},
		{name: "too small", content: func(m []byte) []byte { return m[:40] }, invalid: true, want: "smaller than the 64-byte header"},
		{name: "wrong magic", content: func(m []byte) []byte { copy(m, "not a scoreboard"); return m }, invalid: true, want: "bad magic"},
		{name: "wrong version", content: patch(8, 99), invalid: true, want: "layout version 99"},
		{name: "wrong record size", content: patch(28, 96), invalid: true, want: "record sizes"},
		{name: "zero procs", content: patch(16, 0), invalid: true, want: "must be positive"},
		{name: "truncated", content: func(m []byte) []byte { return m[:len(m)-192] }, invalid: true, want: "need"},
		{name: "too long", content: func(m []byte) []byte { return append(m, make([]byte, 4096)...) }, invalid: true, want: "need"},
		{name: "geometry larger than file", content: patch(20, 1000), invalid: true, want: "2 procs x 1000 threads need"},
		{
			name:    "read-only file",
			content: func(m []byte) []byte { return m },
			open: func(t *testing.T, path string) *os.File {
				f, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				return f
			},
			want: "mmap",
		},
		{
			name: "closed file",
			open: func(t *testing.T, path string) *os.File {
				f, err := os.Create(path)
				if err != nil {
					t.Fatal(err)
				}
				f.Close()
				return f
			},
			want: "closed file",
		},
		{
			name: "bad descriptor",
			open: func(t *testing.T, path string) *os.File {
				// A descriptor number nothing has open.
				return os.NewFile(1<<20-1, "fd-nobody-has")
			},
			want: "bad file descriptor",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sb")
			if tt.content != nil {
				if err := os.WriteFile(path, tt.content(valid()), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var f *os.File
			if tt.open != nil {
				f = tt.open(t, path)
			} else {
				var err error
				if f, err = os.OpenFile(path, os.O_RDWR, 0); err != nil {
					t.Fatal(err)
				}
			}
			defer f.Close()
			b, err := Open(f)
			if err == nil {
				b.Close()
				t.Fatal("Open succeeded")
			}
			t.Logf("error: %v", err)
			if got := errors.Is(err, ErrInvalid); got != tt.invalid {
				t.Errorf("errors.Is(err, ErrInvalid) = %v, want %v", got, tt.invalid)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "opening scoreboard") {
				t.Errorf("error %q lacks context", err)
			}
		})
	}

	t.Run("nil file", func(t *testing.T) {
		if _, err := Open(nil); err == nil || !strings.Contains(err.Error(), "nil file") {
			t.Errorf("Open(nil) = %v", err)
		}
	})
	t.Run("regular file with a valid segment", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "sb")
		if err := os.WriteFile(path, valid(), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Open(f)
		if err != nil {
			f.Close()
			t.Fatalf("Open: %v", err)
		}
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
}

func TestOutOfRange(t *testing.T) {
	b := newHeapBoard(t, 2, 3)
	for _, f := range []func(){
		func() { b.Proc(2) },
		func() { b.Proc(-1) },
		func() { b.Worker(0, 3) },
		func() { b.Worker(2, 0) },
		func() { b.Worker(-1, 0) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(r.(string), "out of range") {
					t.Errorf("recovered %v, want an out of range panic", r)
				}
			}()
			f()
		}()
	}
}

func TestNoAllocs(t *testing.T) {
	b := newBoard(t, 1, 1)
	w := b.Worker(0, 0)
	now := time.Now()
	n := testing.AllocsPerRun(100, func() {
		w.StartConn()
		w.StartRequest(now, netip.Addr{}, "GET", "/index.html", "HTTP/1.1")
		w.EndRequest(now, 512)
		w.SetState(KeepAlive)
	})
	if n != 0 {
		t.Errorf("%v allocations per request", n)
	}
}

func TestCountersShared(t *testing.T) {
	c, err := CreateCounters()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Add(Spawned, 3)
	c.Add(ExitedCrashed, 1)
	c.SetQueue(1, 7, 511)
	// A second mapping of the same file, as a child has through the
	// descriptor it inherits.
	fd, err := syscall.Dup(int(c.File().Fd()))
	if err != nil {
		t.Fatal(err)
	}
	d, err := OpenCounters(os.NewFile(uintptr(fd), "dup"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Get(Spawned) != 3 || d.Get(ExitedCrashed) != 1 {
		t.Fatalf("counters through another mapping: %d %d", d.Get(Spawned), d.Get(ExitedCrashed))
	}
	if depth, limit := d.Queue(1); depth != 7 || limit != 511 {
		t.Fatalf("queue %d/%d", depth, limit)
	}
	c.Add(Spawned, 1)
	if d.Get(Spawned) != 4 {
		t.Fatal("an update is not seen through the other mapping")
	}
}

func TestCountersHistogram(t *testing.T) {
	c, err := CreateCounters()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, d := range []time.Duration{time.Millisecond, 7 * time.Millisecond, 300 * time.Millisecond, 20 * time.Second} {
		c.Observe(d)
	}
	cum, n, sum := c.Durations()
	if n != 4 || sum != time.Millisecond+7*time.Millisecond+300*time.Millisecond+20*time.Second {
		t.Fatalf("count %d sum %s", n, sum)
	}
	// <=5ms: 1; <=10ms: 2; <=0.5s: 3; <=10s: 3 (the 20 s one is only in +Inf).
	if cum[0] != 1 || cum[1] != 2 || cum[6] != 3 || cum[len(cum)-1] != 3 {
		t.Fatalf("cumulative %v", cum)
	}
	c.SetQueue(0, 5, 511)
	c.SetQueue(0, 2, 511)
	if c.MaxQueue(0) != 5 {
		t.Fatalf("max queue %d", c.MaxQueue(0))
	}
}

// dupFile returns a new descriptor of f's file, as a child inherits one.
func dupFile(f *os.File) (*os.File, error) {
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "dup"), nil
}

// TestAcceptedCountsFromEachProcess: a slot's Accepted counts the
// connections its process accepted, closed ones included, and starts again
// from zero when another process takes the slot (the MPM reads its growth
// as the child's accept rate).
func TestAcceptedCountsFromEachProcess(t *testing.T) {
	b := newBoard(t, 2, 1)
	p := b.Proc(0)
	p.SetPID(77)
	for range 3 {
		p.Opened()
		p.Closed()
	}
	if pi := p.Snapshot(); pi.Accepted != 3 || pi.Conns != 0 {
		t.Fatalf("Accepted %d, Conns %d after 3 connections came and went; want 3, 0", pi.Accepted, pi.Conns)
	}
	p.SetPID(78)
	if pi := p.Snapshot(); pi.Accepted != 0 {
		t.Errorf("Accepted %d for the slot's new process, want 0", pi.Accepted)
	}
}
