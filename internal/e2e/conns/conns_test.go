package conns

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// eventMPM is one event child of four workers, so that a couple of hundred
// connections are many times its slots: before a connection held no slot
// while it read its header, a dozen silent ones stalled it.
const eventMPM = `mpm:
  name: event
  start_servers: 1
  server_limit: 2
  threads_per_child: 4
  min_spare_threads: 1
  max_spare_threads: 8
  max_request_workers: 8
`

// handOverAtOnce and deferred are the listen entries of the tests that look
// at what a child does with a connection before its first bytes: handed
// over at once (accept_filter none, the default), or kept by the kernel
// until they come (data).
const (
	handOverAtOnce = "listen: [{address: \"{addr}\", accept_filter: none}]\n"
	deferred       = "listen: [{address: \"{addr}\", accept_filter: data}]\n"
)

// auto reads s's /server-status?auto on a connection of its own, bounded
// by within; nil if no answer came.
func auto(t *testing.T, addr string, within time.Duration) map[string]string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, within)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(within))
	fmt.Fprintf(c, "GET /server-status?auto HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		return nil
	}
	v := map[string]string{}
	for _, line := range strings.Split(string(body), "\n") {
		if k, val, ok := strings.Cut(line, ": "); ok {
			v[k] = val
		}
	}
	return v
}

func num(v map[string]string, k string) int {
	n, _ := strconv.Atoi(v[k])
	return n
}

// silent opens n connections that send nothing.
func silent(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("silent connection %d: %v", i, err)
		}
		conns = append(conns, c)
		t.Cleanup(func() { c.Close() })
	}
	return conns
}

// get makes one request on a new connection and returns its status and how
// long the answer took; status 0 if none came within.
func get(t *testing.T, addr, path string, within time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, within)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(start.Add(within))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, time.Since(start)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}

// TestSilentConnectionsDelayNothingOnEvent: 200 connections that send
// nothing, fifty times the event child's slots, do not delay a request.
// With accept_filter none the child has them, and the status page shows
// them reading, holding no worker; with the default, data, the kernel keeps
// them from the child until they send, and one that then sends a request
// is answered.
func TestSilentConnectionsDelayNothingOnEvent(t *testing.T) {
	requests := func(t *testing.T, addr string) {
		t.Helper()
		for i := range 5 {
			code, took := get(t, addr, "/hello.txt", 5*time.Second)
			if code != 200 || took > 2*time.Second {
				t.Fatalf("request %d behind 200 silent connections: status %d after %v", i, code, took)
			}
		}
	}
	t.Run("accept_filter none", func(t *testing.T) {
		s := e2e.StartServer(t, handOverAtOnce+eventMPM+"timeouts: {read_header: 30s}\n")
		silent(t, s.Addr, 200)
		var v map[string]string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if v = auto(t, s.Addr, 3*time.Second); v != nil && num(v, "ConnsAsyncWaitIO") >= 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("?auto with 200 silent connections: %v; want ConnsAsyncWaitIO 200", v)
			}
		}
		// The page's own request holds the one busy worker.
		if num(v, "BusyWorkers") > 1 || num(v, "ConnsTotal") < 201 {
			t.Fatalf("?auto with 200 silent connections: BusyWorkers %s, ConnsTotal %s; want at most 1 and at least 201\n%v",
				v["BusyWorkers"], v["ConnsTotal"], v)
		}
		requests(t, s.Addr)
	})
	t.Run("accept_filter data", func(t *testing.T) {
		s := e2e.StartServer(t, deferred+eventMPM+"timeouts: {read_header: 30s}\n")
		// The kernel keeps them for about a second: looked at within it,
		// the child has none of them. Tried three times, with fresh
		// connections, for a machine that may be slow to open them.
		var v map[string]string
		for try := 0; ; try++ {
			start := time.Now()
			silent(t, s.Addr, 20)
			v = auto(t, s.Addr, 3*time.Second)
			if time.Since(start) < 900*time.Millisecond && v != nil && num(v, "ConnsTotal") == 1 && num(v, "ConnsAsyncWaitIO") == 0 {
				break
			}
			if try == 2 {
				t.Fatalf("?auto within a second of 20 silent connections, kept by the kernel: %v; want ConnsTotal 1 (the page's own), ConnsAsyncWaitIO 0", v)
			}
		}
		conns := silent(t, s.Addr, 200)
		requests(t, s.Addr)
		c := conns[0]
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET /hello.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("a silent connection that then sends a request: %v %v", resp, err)
		}
		resp.Body.Close()
	})
}

// cutAt sends head on a new connection: its first byte at first after the
// connect, then the rest a byte every 100ms, until the server closes the
// connection (or answers). It returns when that happened, from the connect.
func cutAt(t *testing.T, addr string, first time.Duration, head string, within time.Duration) time.Duration {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetDeadline(start.Add(within))
	closed := make(chan time.Duration, 1)
	go func() {
		io.Copy(io.Discard, c) // until the server closes or answers and closes
		closed <- time.Since(start)
	}()
	time.Sleep(first)
	for i := 0; i < len(head); i++ {
		if _, err := c.Write([]byte{head[i]}); err != nil {
			break // the server closed
		}
		select {
		case d := <-closed:
			return d
		case <-time.After(100 * time.Millisecond):
		}
	}
	return <-closed
}

// TestHeaderTimeoutFromTheAccept: a header dripped in is cut at read_header
// from the accept, though its first byte comes at 0.9 x read_header: on the
// fast path, and after the fast path handed the request to net/http (a POST
// line), whose own header timeout starts when it gets the connection.
// Without the bound the cut came at read_header from the first byte, or
// later. With accept_filter none the accept is the TCP handshake; with the
// default, data, it is the first byte's arrival (the kernel keeps the
// connection until then, as under Apache's AcceptFilter data): the child
// holds the connection no longer than read_header either way.
func TestHeaderTimeoutFromTheAccept(t *testing.T) {
	const timeout = 3 * time.Second
	first := timeout * 9 / 10
	for _, mpm := range []string{"event", "worker"} {
		for _, filter := range []string{"none", "data"} {
			t.Run(mpm+"/accept_filter "+filter, func(t *testing.T) {
				listen := handOverAtOnce
				accept, slack := time.Duration(0), time.Second // when the child accepts, from the connect
				if filter == "data" {
					listen, accept, slack = deferred, first, 2*time.Second
				}
				s := e2e.StartServer(t, listen+fmt.Sprintf("mpm: {name: %s, start_servers: 1}\ntimeouts: {read_header: %s}\n", mpm, timeout))
				drip := "GET /hello.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: " + strings.Repeat("a", 200) + "\r\n\r\n"
				handed := "POST /hello.txt HTTP/1.1\r\n" + drip[len("GET /hello.txt HTTP/1.1\r\n"):]
				for name, head := range map[string]string{"fast path": drip, "handed to net/http": handed} {
					got := cutAt(t, s.Addr, first, head, 4*timeout)
					if filter == "none" && got < timeout-500*time.Millisecond || got > accept+timeout+slack {
						t.Errorf("%s: header whose first byte came at %v cut at %v from the connect; want about %v after the accept at %v", name, first, got, timeout, accept)
					}
				}
			})
		}
	}
}

// connect opens a connection to addr, closed when the test ends.
func connect(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestGarbageGets400AtOnce: an unparsable request line is answered 400 as
// soon as it is in, not when a header end that never comes times out.
func TestGarbageGets400AtOnce(t *testing.T) {
	s := e2e.StartServer(t, eventMPM)
	c := connect(t, s.Addr)
	start := time.Now()
	c.SetDeadline(start.Add(5 * time.Second))
	io.WriteString(c, "GARBAGE\r\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 400 ") {
		t.Fatalf("after GARBAGE: %q, %v after %v; want a 400", line, err, time.Since(start))
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("400 after %v; want it at once", took)
	}
}

// TestMinRateCutsASlowBody: a body dripped in at 50 bytes a second, a tenth
// of timeouts.min_rate's default, is cut a little past its grace (half of
// read_header, 2 s here), long before the read timeout (60s) would.
func TestMinRateCutsASlowBody(t *testing.T) {
	s := e2e.StartServer(t, eventMPM+"timeouts: {read_header: 4s}\n")
	c := connect(t, s.Addr)
	start := time.Now()
	c.SetDeadline(start.Add(20 * time.Second))
	fmt.Fprintf(c, "POST /hello.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10000\r\n\r\n")
	closed := make(chan time.Duration, 1)
	go func() {
		io.Copy(io.Discard, c)
		closed <- time.Since(start)
	}()
	chunk := []byte(strings.Repeat("b", 10))
	for {
		select {
		case d := <-closed:
			if d > 8*time.Second {
				t.Fatalf("slow body cut after %v; want a few seconds", d)
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
		if time.Since(start) > 8*time.Second {
			t.Fatalf("a body at 50 bytes a second still read after %v", time.Since(start))
		}
		c.Write(chunk) // an error: the server closed; the reader says when
	}
}

// TestKeepAliveAndReadingCounted: ?auto's event block counts idle
// keep-alive connections as keep-alive and silent ones as reading (waiting
// for I/O), each apart; ?json's children say how many each holds.
func TestKeepAliveAndReadingCounted(t *testing.T) {
	s := e2e.StartServer(t, handOverAtOnce+eventMPM+"timeouts: {read_header: 30s, idle: 30s}\n")
	e2e.HoldConnections(t, s.Addr, 3)
	silent(t, s.Addr, 4)
	var v map[string]string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		v = auto(t, s.Addr, 3*time.Second)
		if v != nil && num(v, "ConnsAsyncKeepAlive") == 3 && num(v, "ConnsAsyncWaitIO") == 4 && num(v, "ConnsTotal") == 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("?auto with 3 idle keep-alive and 4 silent connections: %v; want ConnsAsyncKeepAlive 3, ConnsAsyncWaitIO 4, ConnsTotal 8", v)
		}
	}
	// ?json's children, once the ?auto requests' connections are gone;
	// the page's own connection is the eighth.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var st struct {
			Children []struct {
				Connections int `json:"connections"`
				KeepAlive   int `json:"keep_alive"`
			} `json:"children"`
		}
		_, js, _ := e2e.Get(s.URL("/server-status?json"))
		if err := json.Unmarshal([]byte(js), &st); err != nil {
			t.Fatal(err)
		}
		conns, ka := 0, 0
		for _, c := range st.Children {
			conns += c.Connections
			ka += c.KeepAlive
		}
		if conns == 8 && ka == 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("?json's children hold %d connections, %d keep-alive; want 8 and 3:\n%s", conns, ka, js)
		}
	}
}

// TestWorkerConnectionsAboveTheDescriptorLimit: an event child given a
// worker_connections above its descriptor limit says so in the error log,
// as nginx does, and serves.
func TestWorkerConnectionsAboveTheDescriptorLimit(t *testing.T) {
	s := e2e.StartServer(t, "worker_connections: 1000000000\n"+eventMPM)
	s.Log.Wait(t, "worker_connections is above this child's descriptor limit", 1, 10*time.Second)
	if code, _, err := e2e.Get(s.URL("/hello.txt")); code != 200 {
		t.Fatalf("GET: %d %v", code, err)
	}
}

// TestSilentConnectionsReclaimed: in the worker and prefork models a
// connection holds its thread from the accept, so connections that send
// nothing can hold them all. When every thread is held and clients wait to
// be accepted, a child closes its connections that have sent nothing for a
// second, idle keep-alive ones too since the server is at
// max_request_workers: the clients are served within a few seconds, not
// after read_header's or idle's 30 s; the error log and
// phased_connections_reclaimed_total say so. A connection sending its
// header slowly keeps its thread. (TestMaxRequestWorkersIsLoggedEachTime,
// in internal/e2e/mpm, holds keep-alive connections on a server that can
// still grow: they are not closed, the MPM spawns a child.)
func TestSilentConnectionsReclaimed(t *testing.T) {
	for _, tt := range []struct{ name, mpm string }{
		{"worker", "mpm: {name: worker, start_servers: 1, server_limit: 1, threads_per_child: 4, min_spare_threads: 1, max_spare_threads: 4, max_request_workers: 4}\n"},
		{"prefork", "mpm: {name: prefork, start_servers: 4, min_spare_servers: 1, max_spare_servers: 4, server_limit: 4, max_request_workers: 4}\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := e2e.StartServer(t, handOverAtOnce+"timeouts: {read_header: 30s, idle: 30s}\n"+tt.mpm)
			s.WaitChildren(t, max(1, strings.Count(tt.mpm, "prefork")*4), 10*time.Second)
			held := e2e.HoldConnections(t, s.Addr, 2)
			quiet := silent(t, s.Addr, 1)
			slow := connect(t, s.Addr)
			fmt.Fprintf(slow, "GET /hello.txt HT")
			// Three clients now wait in the accept queue, each keeping
			// its connection once answered (so that a client served
			// frees no thread for the next).
			type answer struct {
				code int
				took time.Duration
			}
			answers := make(chan answer, 3)
			for range 3 {
				c := connect(t, s.Addr)
				go func() {
					start := time.Now()
					c.SetDeadline(start.Add(10 * time.Second))
					fmt.Fprintf(c, "GET /hello.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
					code := 0
					if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
						code = resp.StatusCode
						resp.Body.Close()
					}
					answers <- answer{code, time.Since(start)}
				}()
			}
			for range 3 {
				if a := <-answers; a.code != 200 || a.took > 5*time.Second {
					t.Fatalf("a client behind threads held by silent connections: status %d after %v; log:\n%s", a.code, a.took, s.Log)
				}
			}
			for i, c := range append(held, quiet...) {
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
					t.Fatalf("silent connection %d still open: %v", i, err)
				}
			}
			slow.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := slow.Read(make([]byte, 1)); !isTimeout(err) {
				t.Fatalf("the connection sending its header slowly was closed: %v", err)
			}
			fmt.Fprintf(slow, "TP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			slow.SetReadDeadline(time.Now().Add(5 * time.Second))
			if resp, err := http.ReadResponse(bufio.NewReader(slow), nil); err != nil || resp.StatusCode != 200 {
				t.Fatalf("the slow connection's request: %v %v", resp, err)
			}
			recs := s.Log.Records("every thread of this child was held while connections waited to be accepted; closed connections that had sent nothing for a second (new ones; idle keep-alive ones too once the server was at max_request_workers); see phased_connections_reclaimed_total")
			total := 0
			for _, r := range recs {
				if r["level"] != "WARN" {
					t.Fatalf("record %v", r)
				}
				n, _ := r["connections"].(float64)
				total += int(n)
			}
			if total != 3 {
				t.Fatalf("warnings %v count %d connections, want 3; log:\n%s", recs, total, s.Log)
			}
			_, m, _ := e2e.Get(s.URL("/metrics"))
			if !strings.Contains(m, "phased_connections_reclaimed_total 3\n") {
				t.Fatalf("metrics:\n%s", m)
			}
		})
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
