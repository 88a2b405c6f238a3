package status

import (
	"bufio"
	"net"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/scoreboard"
)

// procfsHeldConnections is how the status page used to count the event
// block's ConnsTotal, kept here as the benchmark's baseline and as a check
// of the children's own count: how many TCP connections each child of procs
// holds on one of the listen addresses, from the kernel, when the page is
// read: the sockets of /proc/net/tcp{,6} whose local port is a listener's
// and that are not listening, matched by inode against each child's
// descriptors. A connection still in the accept queue belongs to no child
// and is not counted. Its cost grows with every socket on the machine and
// every descriptor of every child: 0.1 to 0.18 s a page with 40,000 sockets.
func procfsHeldConnections(procs []scoreboard.ProcInfo, addrs []string) map[int]int {
	ports := map[uint64]bool{}
	for _, a := range addrs {
		if _, p, err := net.SplitHostPort(a); err == nil {
			if n, err := strconv.ParseUint(p, 10, 16); err == nil {
				ports[n] = true
			}
		}
	}
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		connSockets(f, ports, inodes)
	}
	held := map[int]int{}
	if len(inodes) == 0 {
		return held
	}
	for _, p := range procs {
		if p.PID == 0 {
			continue
		}
		dir := "/proc/" + strconv.Itoa(p.PID) + "/fd/"
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			l, err := os.Readlink(dir + e.Name())
			if err != nil || !strings.HasPrefix(l, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] {
				held[p.PID]++
			}
		}
	}
	return held
}

// tcpListen is the LISTEN state in /proc/net/tcp.
const tcpListen = "0A"

// connSockets adds to inodes the inode of every socket in file (the format
// of /proc/net/tcp) whose local port is in ports and that is not
// listening.
func connSockets(file string, ports map[uint64]bool, inodes map[string]bool) {
	f, err := os.Open(file)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 || fs[3] == tcpListen {
			continue
		}
		_, port, ok := strings.Cut(fs[1], ":")
		if n, err := strconv.ParseUint(port, 16, 16); !ok || err != nil || !ports[n] {
			continue
		}
		inodes[fs[9]] = true
	}
}

// TestProcfsHeldConnections: the baseline counts the connections a process holds on a
// listener from /proc, leaving out the ones still in the accept queue.
func TestProcfsHeldConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 4 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for range 3 { // the fourth stays in the accept queue
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	me := os.Getpid()
	held := procfsHeldConnections([]scoreboard.ProcInfo{{PID: me}, {PID: 0}}, []string{ln.Addr().String()})
	if held[me] != 3 || len(held) != 1 {
		t.Fatalf("held %v, want %d: 3", held, me)
	}
	if held := procfsHeldConnections([]scoreboard.ProcInfo{{PID: me}}, []string{"127.0.0.1:1"}); held[me] != 0 {
		t.Fatalf("on another port: %v", held)
	}
}

// eventModule is an event MPM's status module on a new board of procs
// process slots of 2 workers, slot 0 held by this process with its workers
// idle, answering its page to 127.0.0.0/8.
func eventModule(tb testing.TB, procs int, listen string) (*Module, *scoreboard.Board) {
	tb.Helper()
	k, err := scoreboard.CreateCounters()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { k.Close() })
	b, err := scoreboard.Create("status-event-test", procs, 2)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	p := b.Proc(0)
	p.SetPID(os.Getpid())
	p.SetGeneration(1)
	p.SetState(scoreboard.Idle)
	b.SetGeneration(1)
	for j := range 2 {
		b.Worker(0, j).SetState(scoreboard.Idle)
	}
	m, err := New(Options{Path: "/server-status", Allow: []string{"127.0.0.0/8"}, MPM: "event", Async: true,
		Generation: 1, MasterStart: time.Now(), GenerationStart: time.Now(), Listeners: []string{listen}, Board: b, Counters: k})
	if err != nil {
		tb.Fatal(err)
	}
	return m, b
}

// auto reads m's ?auto page.
func auto(tb testing.TB, m *Module) string {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/server-status?auto", nil)
	r.RemoteAddr = "127.0.0.1:40000"
	m.Wrap(nil).ServeHTTP(rec, r)
	if rec.Code != 200 {
		tb.Fatalf("?auto: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// TestEventConnsFromTheScoreboard: the event block counts the connections
// each child says it holds on its process slot, by what they do, without
// asking the kernel (this process holds no connection on the listener here
// at all).
func TestEventConnsFromTheScoreboard(t *testing.T) {
	m, b := eventModule(t, 2, "127.0.0.1:1")
	p := b.Proc(0)
	for range 10 {
		p.Opened()
	}
	p.AddConnState(scoreboard.Reading, 4)
	p.AddConnState(scoreboard.KeepAlive, 3)
	p.AddConnState(scoreboard.Writing, 1)
	p.AddConnState(scoreboard.Closing, 1)
	// and one served by a worker, counted in none of them
	page := auto(t, m)
	for _, want := range []string{"\nProcesses: 1\n", "\nConnsTotal: 10\n", "\nConnsAsyncWaitIO: 4\n",
		"\nConnsAsyncWriting: 1\n", "\nConnsAsyncKeepAlive: 3\n", "\nConnsAsyncClosing: 1\n"} {
		if !strings.Contains(page, want) {
			t.Fatalf("?auto has no %q:\n%s", strings.TrimSpace(want), page)
		}
	}
	p.AddConnState(scoreboard.KeepAlive, -1) // one keep-alive connection sends its next request
	p.AddConnState(scoreboard.Reading, 1)
	if page := auto(t, m); !strings.Contains(page, "\nConnsAsyncWaitIO: 5\n") || !strings.Contains(page, "\nConnsAsyncKeepAlive: 2\n") {
		t.Fatalf("after a keep-alive connection reads:\n%s", page)
	}
}

// BenchmarkEventAuto measures the event MPM's ?auto page with 20,000
// loopback connections held on the listener (40,000 sockets in the
// kernel's table, both ends being this process): as the page reads the
// connections now, from the scoreboard ("scoreboard"), and with the
// kernel look-up it made before on top ("procfs": /proc/net/tcp{,6} and
// every descriptor of the child, here this process's 40,000). Run it with
//
//	go test -run '^$' -bench BenchmarkEventAuto -benchtime 20x ./internal/status/
//
// It raises RLIMIT_NOFILE for the connections (root may raise the hard
// limit; otherwise it holds as many as the limit allows) and closes them
// all, with a reset so no TIME_WAIT is left, when it ends.
func BenchmarkEventAuto(b *testing.B) {
	const want = 20000
	n := holdableConns(b, want)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	conns := holdConns(b, ln, n)
	m, board := eventModule(b, 2, ln.Addr().String())
	for range n {
		board.Proc(0).Opened() // what a child counts as it accepts
	}
	me := os.Getpid()
	if held := procfsHeldConnections([]scoreboard.ProcInfo{{PID: me}}, []string{ln.Addr().String()}); held[me] != n {
		b.Fatalf("the kernel sees %d connections held, want %d", held[me], n)
	}
	if page := auto(b, m); !strings.Contains(page, "\nConnsTotal: "+strconv.Itoa(n)+"\n") {
		b.Fatalf("?auto does not count the %d connections:\n%s", n, page)
	}
	b.Logf("%d loopback connections held (%d sockets)", len(conns)/2, len(conns))
	b.Run("scoreboard", func(b *testing.B) {
		for b.Loop() {
			auto(b, m)
		}
	})
	b.Run("procfs", func(b *testing.B) {
		snap := board.Snapshot()
		for b.Loop() {
			auto(b, m)
			procfsHeldConnections(snap.Procs, []string{ln.Addr().String()})
		}
	})
}

// holdableConns raises RLIMIT_NOFILE so that this process can hold want
// loopback connections (two descriptors each), and returns how many it can
// hold; the limit is put back when b ends.
func holdableConns(b *testing.B, want int) int {
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		b.Fatal(err)
	}
	need := uint64(2*want + 256)
	if old.Cur < need {
		lim := syscall.Rlimit{Cur: need, Max: max(old.Max, need)}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			lim = syscall.Rlimit{Cur: old.Max, Max: old.Max} // not root: as far as the hard limit goes
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		}
		b.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	}
	var now syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now)
	n := min(want, int(now.Cur-256)/2)
	if n < want {
		b.Logf("RLIMIT_NOFILE %d: holding %d connections, not %d", now.Cur, n, want)
	}
	return n
}

// holdConns opens n connections to ln from 127.0.0.1 to 127.0.0.4 (each
// source address has its own ephemeral ports) and accepts them; both ends
// are closed with a reset when b ends. It gives up after a minute.
func holdConns(b *testing.B, ln net.Listener, n int) []net.Conn {
	accepted := make(chan net.Conn, n)
	go func() {
		for range n {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	conns := make([]net.Conn, 0, 2*n)
	b.Cleanup(func() {
		for _, c := range conns {
			c.(*net.TCPConn).SetLinger(0) // a reset: no TIME_WAIT left behind
			c.Close()
		}
	})
	deadline := time.Now().Add(time.Minute)
	for i := range n {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%4))}, Deadline: deadline}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	for range n {
		select {
		case c, ok := <-accepted:
			if !ok {
				b.Fatal("accept failed")
			}
			conns = append(conns, c)
		case <-time.After(time.Until(deadline)):
			b.Fatal("connections not accepted within a minute")
		}
	}
	return conns
}
