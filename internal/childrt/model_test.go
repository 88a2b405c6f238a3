package childrt

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/acceptmutex"
	"github.com/phasedhq/phased/internal/contract"
	"github.com/phasedhq/phased/internal/scoreboard"
)

func modelRuntime(t testing.TB, model Model, threads int) (*Runtime, string, *bufio.Scanner, *scoreboard.Board) {
	t.Helper()
	rt, addr, events := testRuntime(t)
	b, err := scoreboard.Create("test", 2, max(threads, 1))
	if err != nil {
		t.Fatal(err)
	}
	// The board is never unmapped: as in a real child, whose board goes with
	// the process, a connection goroutine that net/http or the fast path
	// has not finished when serve returns (a hard stop does not wait for
	// them) may still write its slot, which an unmapped board would turn
	// into a segfault of the test binary.
	_ = b
	rt.Model, rt.Threads, rt.board, rt.Slot, rt.Generation = model, threads, b, 1, 7
	return rt, addr, events, b
}

// stopBoth stops two children served by serveAsync and waits for them.
func stopBoth(sigsA chan<- os.Signal, doneA <-chan error, sigsB chan<- os.Signal, doneB <-chan error) {
	sigsA <- syscall.SIGINT
	sigsB <- syscall.SIGINT
	<-doneA
	<-doneB
}

// readable reports whether a response arrives on c within d.
func answered(c net.Conn, br *bufio.Reader, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(br, nil)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return true
}

func send(t *testing.T, c net.Conn) {
	t.Helper()
	if _, err := fmt.Fprintf(c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// TestWorkerModelHoldsASlotPerConnection: with two slots, a third keep-alive
// connection waits in the backlog until one of the first two closes.
func TestWorkerModelHoldsASlotPerConnection(t *testing.T) {
	rt, addr, events, b := modelRuntime(t, ModelWorker, 2)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	sigs, done := serveAsync(t, rt, events, ok)
	p := b.Proc(1).Snapshot()
	if p.PID != os.Getpid() || p.Generation != 7 || b.Snapshot().Letters() != "..__" {
		t.Fatalf("after ready: proc %+v letters %q", p, b.Snapshot().Letters())
	}
	c1, r1 := dial(t, addr)
	c2, r2 := dial(t, addr)
	send(t, c1)
	send(t, c2)
	if !answered(c1, r1, time.Second) || !answered(c2, r2, time.Second) {
		t.Fatal("first two connections not served")
	}
	c3, r3 := dial(t, addr)
	send(t, c3)
	if answered(c3, r3, 300*time.Millisecond) {
		t.Fatal("third connection served while both slots are held")
	}
	if got := b.Snapshot().Letters(); got != "..KK" {
		t.Fatalf("letters with two idle keep-alive connections: %q", got)
	}
	if got := b.Proc(1).Conns(); got != 2 { // the third waits in the backlog
		t.Fatalf("proc slot holds %d connections, want 2", got)
	}
	c1.Close()
	if !answered(c3, r3, time.Second) {
		t.Fatal("third connection not served after a slot freed")
	}
	w := b.Worker(1, 0).Snapshot()
	w2 := b.Worker(1, 1).Snapshot()
	if w.Requests+w2.Requests != 3 || w.Bytes+w2.Bytes != 15 {
		t.Fatalf("counters: %+v %+v", w, w2)
	}
	sigs <- syscall.SIGTERM
	<-done
	if !b.Proc(1).Quiescing() || b.Proc(1).State() != scoreboard.Graceful {
		t.Fatal("drain not marked on the scoreboard")
	}
}

// TestEventTunnelsGiveTheirSlotBack: in the event model a request whose
// handler takes its connection over (a WebSocket after its 101) gives its
// slot back: with one slot, three tunnels stay open and carry bytes, and a
// plain request is served meanwhile; the scoreboard shows the slot idle
// with one request done per tunnel, and the tunnels among the child's
// connections. (Before, the first tunnel held the only slot until it
// closed, and every other request waited for it.)
func TestEventTunnelsGiveTheirSlotBack(t *testing.T) {
	rt, addr, events, b := modelRuntime(t, ModelEvent, 1)
	ended := make(chan struct{}, 3)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/tunnel" {
			io.WriteString(w, "hi")
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(c, brw) // echo until the client closes
		ended <- struct{}{}
	})
	serveForTest(t, rt, events, h)
	var tunnels []net.Conn
	var readers []*bufio.Reader
	for i := range 3 {
		c, br := dial(t, addr)
		io.WriteString(c, "GET /tunnel HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("tunnel %d, with %d open: %v %v", i, i, resp, err)
		}
		tunnels, readers = append(tunnels, c), append(readers, br)
	}
	c, br := dial(t, addr)
	send(t, c)
	if !answered(c, br, 2*time.Second) {
		t.Fatal("a request waited while three tunnels were open")
	}
	if got := b.Snapshot().Letters(); got != "._" {
		t.Fatalf("letters with three tunnels open: %q, want the slot idle", got)
	}
	if w := b.Worker(1, 0).Snapshot(); w.Requests != 4 {
		t.Fatalf("the slot counted %d requests, want 4 (three upgrades, one GET)", w.Requests)
	}
	if p := b.Proc(1).Snapshot(); p.Conns != 4 || p.Tunnels != 3 {
		t.Fatalf("the child holds %d connections, %d of them tunnels; want 4, 3 (and one kept alive)", p.Conns, p.Tunnels)
	}
	for i, c := range tunnels { // each still carries bytes
		io.WriteString(c, "ping")
		got := make([]byte, 4)
		if _, err := io.ReadFull(readers[i], got); err != nil || string(got) != "ping" {
			t.Fatalf("tunnel %d: %q %v", i, got, err)
		}
		c.(*net.TCPConn).CloseWrite()
	}
	for range tunnels {
		select {
		case <-ended:
		case <-time.After(2 * time.Second):
			t.Fatal("a tunnel's handler did not end when its client closed")
		}
	}
	for deadline := time.Now().Add(2 * time.Second); b.Proc(1).Snapshot().Tunnels != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d tunnels counted after all three ended", b.Proc(1).Snapshot().Tunnels)
		}
	}
}

// TestEventModelParksIdleConnections: one request slot serves several
// keep-alive connections in turn, because an idle connection holds none.
func TestEventModelParksIdleConnections(t *testing.T) {
	rt, addr, events, b := modelRuntime(t, ModelEvent, 1)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") })
	sigs, done := serveAsync(t, rt, events, ok)
	var conns []net.Conn
	var readers []*bufio.Reader
	for range 3 {
		c, r := dial(t, addr)
		conns, readers = append(conns, c), append(readers, r)
	}
	for round := range 2 {
		for i, c := range conns {
			send(t, c)
			if !answered(c, readers[i], time.Second) {
				t.Fatalf("round %d: connection %d not served", round, i)
			}
		}
	}
	if got := b.Worker(1, 0).Snapshot().Requests; got != 6 {
		t.Fatalf("slot served %d requests, want 6", got)
	}
	if got := b.Snapshot().Letters(); got != "._" {
		t.Fatalf("letters %q", got)
	}
	// The connections the child holds are on its process slot, for the
	// status page's ConnsTotal: all three idle ones, then two.
	if got := b.Proc(1).Conns(); got != 3 {
		t.Fatalf("proc slot holds %d connections, want 3", got)
	}
	conns[0].Close()
	for deadline := time.Now().Add(2 * time.Second); b.Proc(1).Conns() != 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("proc slot holds %d connections after one closed, want 2", b.Proc(1).Conns())
		}
	}
	sigs <- syscall.SIGTERM
	<-done
	if got := b.Proc(1).Conns(); got != 0 {
		t.Fatalf("proc slot holds %d connections after the drain, want 0", got)
	}
}

// TestEventModelAcceptsOnlyWithASlot: an event child accepts a connection
// only while a slot is free. Connections that send nothing hold none: child
// A, with one slot, holds three silent connections and still serves a
// fourth at once. Once A's slot serves a slow request, A stops accepting:
// beyond the one connection its accept loop was already waiting for, the
// next stays in the backlog for child B, instead of waiting inside A while
// B idles.
func TestEventModelAcceptsOnlyWithASlot(t *testing.T) {
	rtA, addr, eventsA, bA := modelRuntime(t, ModelEvent, 1)
	block := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			<-block
		}
		io.WriteString(w, "a")
	})
	sigsA, doneA := serveAsync(t, rtA, eventsA, slow)
	for range 3 {
		dial(t, addr) // silent
	}
	c0, r0 := dial(t, addr)
	send(t, c0)
	if !answered(c0, r0, 2*time.Second) {
		t.Fatal("silent connections held the only slot")
	}
	for deadline := time.Now().Add(2 * time.Second); bA.Proc(1).Snapshot().ConnsReading != 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("proc slot counts %d connections reading, want the 3 silent ones", bA.Proc(1).Snapshot().ConnsReading)
		}
	}
	if got := bA.Snapshot().Letters(); got != "._" {
		t.Fatalf("letters with three silent connections: %q, want the slot idle", got)
	}

	c1, r1 := dial(t, addr)
	fmt.Fprintf(c1, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n") // A's slot is busy now
	for deadline := time.Now().Add(2 * time.Second); bA.Worker(1, 0).State() != scoreboard.Writing; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the slow request did not take A's slot")
		}
	}
	cIn, rIn := dial(t, addr) // the accept A was waiting in takes it
	time.Sleep(50 * time.Millisecond)
	c2, r2 := dial(t, addr)
	time.Sleep(50 * time.Millisecond) // were A accepting, it would take c2 now

	rtB, _, eventsB, _ := modelRuntime(t, ModelEvent, 1)
	rtB.listeners, rtB.addrs = rtA.listeners, rtA.addrs // B shares A's socket
	sigsB, doneB := serveAsync(t, rtB, eventsB, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "b") }))

	send(t, c2)
	c2.SetReadDeadline(time.Now().Add(2 * time.Second))
	resp, err := http.ReadResponse(r2, nil)
	if err != nil {
		t.Fatalf("second connection waited inside the busy child: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "b" {
		t.Fatalf("answered by %q, want the idle child b", body)
	}
	send(t, cIn)
	close(block) // A's request ends before the scoreboards go
	if !answered(c1, r1, time.Second) {
		t.Fatal("the slow request was not answered")
	}
	if !answered(cIn, rIn, time.Second) {
		t.Fatal("the connection A took while busy was not answered")
	}
	stopBoth(sigsA, doneA, sigsB, doneB)
}

// TestMaxConnectionsRetiresTheChild: after its last allowed connection the
// child tells the master it retires and drains.
func TestMaxConnectionsRetiresTheChild(t *testing.T) {
	rt, addr, events, _ := modelRuntime(t, ModelPrefork, 1)
	rt.MaxConnections = 3
	_, done := serveAsync(t, rt, events, http.NotFoundHandler())
	for i := range 3 {
		c, r := dial(t, addr)
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if !answered(c, r, time.Second) {
			t.Fatalf("connection %d not served", i)
		}
	}
	expect(t, events, contract.EventRetiring)
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("child did not finish after its last connection")
	}
	if _, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
		t.Fatal("still accepting after max_connections_per_child")
	}
}

// TestMaxConnectionsWithAMasterAsksFirst: under a master, a child at
// max_connections_per_child asks to retire, naming the cause, and goes on
// accepting until the master's DrainSignal (its replacement is ready), then
// drains. Its MaxConnectionsReached bump is in the shared counters before
// the request reaches the master, which infers the cause from it for plain
// requests (a race that once counted such a recycle as a signal's).
func TestMaxConnectionsWithAMasterAsksFirst(t *testing.T) {
	rt, addr, events, _ := modelRuntime(t, ModelPrefork, 1)
	rt.MaxConnections = 3
	counters, err := scoreboard.CreateCounters()
	if err != nil {
		t.Fatal(err)
	}
	rt.counters = counters      // never closed: see modelRuntime
	rt.MasterPID = os.Getppid() // the "master" is alive
	sigs, done := serveAsync(t, rt, events, http.NotFoundHandler())
	for i := range 4 {
		c, r := dial(t, addr)
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if !answered(c, r, time.Second) {
			t.Fatalf("connection %d not served", i)
		}
		if i == 2 {
			expect(t, events, contract.EventRetireMaxConnections)
			if n := counters.Get(scoreboard.MaxConnectionsReached); n != 1 {
				t.Fatalf("MaxConnectionsReached = %d when the request was sent, want 1", n)
			}
		}
	}
	sigs <- DrainSignal
	expect(t, events, contract.EventRetiring)
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("child did not finish after the master's word")
	}
	if _, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
		t.Fatal("still accepting after the drain")
	}
}

// TestPreforkServesEveryListener: a prefork child with two listeners and
// its one slot free answers a connection on either at once (Apache's
// children poll every listener), and while its slot serves a keep-alive
// connection on one it takes nothing from the other: a connection there
// stays in the backlog for a sibling. With the kernel's listeners and with
// accept_mutex epoll's.
func TestPreforkServesEveryListener(t *testing.T) {
	for _, wakeOne := range []bool{false, true} {
		t.Run(fmt.Sprintf("wakeOne=%v", wakeOne), func(t *testing.T) {
			rtA, addr1, eventsA, _ := modelRuntime(t, ModelPrefork, 1)
			ln2, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln2.Close() })
			addr2 := ln2.Addr().String()
			sockets := []net.Listener{rtA.listeners[0], ln2}
			listeners := func() []net.Listener {
				if !wakeOne {
					return sockets
				}
				var ls []net.Listener
				for _, s := range sockets {
					f, err := s.(*net.TCPListener).File()
					if err != nil {
						t.Fatal(err)
					}
					l, err := acceptmutex.ListenWakeOne(f)
					f.Close()
					if err != nil {
						t.Fatal(err)
					}
					ls = append(ls, l)
				}
				return ls
			}
			rtA.listeners, rtA.addrs = listeners(), []string{addr1, addr2}
			named := func(name string) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })
			}
			sigsA, doneA := serveAsync(t, rtA, eventsA, named("a"))
			for i, addr := range []string{addr2, addr1, addr2, addr1, addr2} {
				c, r := dial(t, addr)
				fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
				if !answered(c, r, time.Second) {
					t.Fatalf("request %d, on %s, not answered within a second", i, addr)
				}
			}

			ka, rka := dial(t, addr1)
			send(t, ka)
			if !answered(ka, rka, time.Second) {
				t.Fatal("keep-alive request not answered")
			}
			other, rOther := dial(t, addr2) // A's slot holds ka
			time.Sleep(100 * time.Millisecond)
			rtB, _, eventsB, _ := modelRuntime(t, ModelPrefork, 1)
			rtB.listeners, rtB.addrs = listeners(), rtA.addrs
			sigsB, doneB := serveAsync(t, rtB, eventsB, named("b"))
			fmt.Fprintf(other, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			// 2 s was too short once in a loaded -race make test (B's start
			// and accept); a connection A took wrongly would wait for ka,
			// held open here, whatever the bound.
			other.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(rOther, nil)
			if err != nil {
				for _, l := range append(rtA.listeners, rtB.listeners...) {
					if am, ok := l.(*acceptmutex.Listener); ok {
						t.Logf("%+v", am.Stats())
					}
				}
				t.Fatalf("the connection on the other listener: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "b" {
				t.Fatalf("answered by %q, want the idle sibling b: the busy child took it", body)
			}
			ka.Close()
			stopBoth(sigsA, doneA, sigsB, doneB)
		})
	}
}

// TestEventChildrenBalanceConnections: an event child that holds many more
// connections than a sibling stops accepting while the sibling catches up,
// so that keep-alive connections, which stay where they were accepted, are
// spread over the children (each gets about the same share of the CPUs).
// A holds 40 connections when B starts; of the next 24, B takes nearly all
// (without balancing, about half).
func TestEventChildrenBalanceConnections(t *testing.T) {
	rtA, addr, eventsA, board := modelRuntime(t, ModelEvent, 4)
	named := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })
	}
	sigsA, doneA := serveAsync(t, rtA, eventsA, named("a"))
	whose := func() string {
		c, r := dial(t, addr)
		send(t, c)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b) // the connection stays open
	}
	for range 40 {
		if got := whose(); got != "a" {
			t.Fatalf("answered by %q with A alone", got)
		}
	}
	rtB, _, eventsB, _ := modelRuntime(t, ModelEvent, 4)
	rtB.listeners, rtB.addrs = rtA.listeners, rtA.addrs
	rtB.board, rtB.Slot = board, 0 // A's scoreboard, the other slot
	sigsB, doneB := serveAsync(t, rtB, eventsB, named("b"))
	toB := 0
	for range 24 {
		if whose() == "b" {
			toB++
		}
	}
	t.Logf("B took %d of 24", toB)
	if toB < 20 {
		t.Errorf("B, with none, took %d of 24 new connections from A's 40", toB)
	}
	stopBoth(sigsA, doneA, sigsB, doneB)
}

// TestEventBalanceSkipsAStoppedSibling: a sibling that looks ready with no
// connections but takes none (stopped, wedged) holds the child back once,
// for balanceWait, and then not for balanceOff: 300 connections in a row
// on a child beside such a sibling are all answered in well under the 3 s
// that waiting for it at each accept would take.
func TestEventBalanceSkipsAStoppedSibling(t *testing.T) {
	rt, addr, events, board := modelRuntime(t, ModelEvent, 4)
	stopped := board.Proc(0) // a sibling that never accepts
	stopped.SetPID(os.Getpid())
	stopped.SetGeneration(rt.Generation)
	stopped.SetState(scoreboard.Idle)
	serveForTest(t, rt, events, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "a") }))
	start := time.Now()
	for i := range 300 {
		c, r := dial(t, addr)
		send(t, c)
		if !answered(c, r, 2*time.Second) {
			t.Fatalf("connection %d not answered", i)
		}
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("300 connections took %v beside a sibling that accepts nothing", d)
	}
	t.Logf("300 connections in %v", time.Since(start))
}

// TestAdmitInABurst: an event child whose free slots are all spoken for by
// connections just accepted (pending) waits for them while the accept queue
// is short, so that a request that would find every slot busy waits where
// a sibling or the MPM sees it; when burstQueue connections or more wait
// in the queue (a burst its goroutines cannot keep up with), it accepts
// while a slot is free rather than let the backlog overflow. A child
// whose slots are all busy waits whatever the queue.
func TestAdmitInABurst(t *testing.T) {
	admitted := func(c *capacity, queue int) bool {
		done := make(chan bool, 1)
		go func() { done <- c.admit(func() int { return queue }) }()
		select {
		case ok := <-done:
			return ok
		case <-time.After(100 * time.Millisecond):
			c.close() // ends the wait
			<-done
			return false
		}
	}
	c := newCapacity(1, 0, 0)
	c.conns, c.pending = 1, 1
	if admitted(c, burstQueue-1) {
		t.Error("admitted past a pending connection with a short accept queue")
	}
	c = newCapacity(1, 0, 0)
	c.conns, c.pending = 1, 1
	if !admitted(c, burstQueue) {
		t.Error("waited with a burst in the accept queue")
	}
	c = newCapacity(1, 0, 0)
	c.take(false)
	if admitted(c, 1000) {
		t.Error("admitted with every slot busy")
	}
}

// TestSlotsGoToWaitingRequestsInTurn: requests that wait for a slot get
// one in the order they came, and a request that comes while others wait
// waits behind them, even when a slot is given back just before it asks.
func TestSlotsGoToWaitingRequestsInTurn(t *testing.T) {
	c := newCapacity(1, 0, 0)
	first, _ := c.take(false)
	const n = 8
	served := make(chan int, n+1)
	wait := func(i int) {
		go func() {
			s, _ := c.take(false)
			served <- i
			c.give(s)
		}()
	}
	for i := range n {
		wait(i)
		untilInLine(t, c, i+1)
	}
	c.give(first)
	wait(n) // came after the slot was given back: still last
	for want := range n + 1 {
		select {
		case got := <-served:
			if got != want {
				t.Fatalf("request %d served in turn %d", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("turn %d: no request served", want)
		}
	}
}

// TestEventRequestsShareOneSlotInTurn: six keep-alive clients of an event
// child with one slot, in front of an app that takes 2 ms a request, each
// sending its next request as soon as it has an answer, are served in
// turn. (When a slot given back was raced for by every waiter and by
// requests just in, clients got 13 to 183 answers in the same time, and
// the longest wait was near a second against a median of 4.5 ms.)
func TestEventRequestsShareOneSlotInTurn(t *testing.T) {
	rt, addr, events, _ := modelRuntime(t, ModelEvent, 1)
	rt.Forward = appForward{}
	serveForTest(t, rt, events, http.NotFoundHandler())
	const clients, each = 6, 100
	var (
		mu      sync.Mutex
		counts  [clients]int
		lat     []time.Duration
		longest time.Duration
		errs    = make(chan error, clients)
	)
	stop := make(chan struct{})
	for i := range clients {
		c, br := dial(t, addr)
		go func() {
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				start := time.Now()
				if _, err := io.WriteString(c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					errs <- err
					return
				}
				if !answered(c, br, 10*time.Second) {
					errs <- fmt.Errorf("client %d: no answer", i)
					return
				}
				mu.Lock()
				counts[i]++
				lat = append(lat, time.Since(start))
				longest = max(longest, time.Since(start))
				mu.Unlock()
			}
		}()
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		total := 0
		for _, n := range counts {
			total += n
		}
		mu.Unlock()
		if total >= clients*each {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests served in 30 s", total)
		}
	}
	close(stop)
	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	lo, hi := counts[0], counts[0]
	for _, n := range counts {
		lo, hi = min(lo, n), max(hi, n)
	}
	slices.Sort(lat)
	t.Logf("requests per client %v, p50 %v p99 %v longest %v", counts, lat[len(lat)/2], lat[len(lat)*99/100], longest)
	if 2*lo < hi {
		t.Fatalf("requests per client %v: not served in turn", counts)
	}
}

// appForward answers every request as an app would, 2 ms later.
type appForward struct{}

func (appForward) ForwardFast(req *ForwardRequest) (ForwardAnswer, any, bool) {
	time.Sleep(2 * time.Millisecond)
	return ForwardAnswer{Status: 200, Header: []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"), Body: []byte("hi")}, nil, true
}

// TestAdmitWaitsInLine: while the slot serves, the event model's accept
// waits in line behind a request that waits: the slot given back goes to
// the request, and when that request gives it back, the accept may let
// one connection in and the slot is free. An accept waiting in line when
// the child stops accepting gives up; the requests in line keep their
// turn.
func TestAdmitWaitsInLine(t *testing.T) {
	c := newCapacity(1, 0, 0)
	s, _ := c.take(false)
	served := make(chan int, 2)
	go func() { s, _ := c.take(false); served <- s }()
	untilInLine(t, c, 1)
	admitted := make(chan bool, 1)
	go func() { admitted <- c.admit(nil) }()
	untilInLine(t, c, 2)
	c.give(s)
	if got := <-served; got != s {
		t.Fatalf("request got slot %d, want %d", got, s)
	}
	untilInLine(t, c, 1) // the accept, now first
	c.give(s)
	select {
	case ok := <-admitted:
		if !ok {
			t.Fatal("admit gave up")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the accept's turn never came")
	}
	c.mu.Lock()
	free := len(c.free)
	c.mu.Unlock()
	if free != 1 || inLine(c) != 0 {
		t.Fatalf("after the accept's turn: %d free, %d in line; want 1 and 0", free, inLine(c))
	}
	// Again, then the child stops accepting.
	s, _ = c.take(false)
	go func() { s, _ := c.take(false); served <- s }()
	untilInLine(t, c, 1)
	go func() { admitted <- c.admit(nil) }()
	untilInLine(t, c, 2)
	c.close()
	if <-admitted {
		t.Fatal("admitted after close")
	}
	if inLine(c) != 1 {
		t.Fatalf("%d in line after close, want the request alone", inLine(c))
	}
	c.give(s)
	if got := <-served; got != s {
		t.Fatalf("after close, request got slot %d, want %d", got, s)
	}
}

// inLine is how many wait in c's line.
func inLine(c *capacity) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queue.n
}

// untilInLine waits (bounded) until k wait in c's line.
func untilInLine(t *testing.T, c *capacity, k int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); inLine(c) != k; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d in line, want %d", inLine(c), k)
		}
	}
}
