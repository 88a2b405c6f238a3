package gateways

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
	"golang.org/x/net/websocket"
)

// The tests of examples/app-node.

// hello is what the app's /api/hello says.
type hello struct {
	Hello      string `json:"hello"`
	PID        int    `json:"pid"`
	Slot       int    `json:"slot"`
	Generation int    `json:"generation"`
}

func apiHello(t *testing.T, s *e2e.Server) hello {
	t.Helper()
	a := get(t, s.URL("/api/hello?name=phased"))
	var h hello
	if a.code != 200 || json.Unmarshal([]byte(a.body), &h) != nil || h.Hello != "phased" {
		t.Fatalf("GET /api/hello: %d %q", a.code, a.body)
	}
	return h
}

// appStarts returns where the app servers said they listen.
func appStarts(s *e2e.Server) []string {
	var out []string
	for _, rec := range s.Log.Records("app server starting") {
		out = append(out, fmt.Sprint(rec["listen"]))
	}
	return out
}

// record waits for the log record msg about app appPID and returns it.
func record(t *testing.T, s *e2e.Server, msg string, appPID int) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		for _, rec := range s.Log.Records(msg) {
			if n, _ := rec["app_pid"].(float64); int(n) == appPID {
				return rec
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log record %q of app %d; log:\n%s", msg, appPID, s.Log)
		}
	}
}

// TestNodeExample runs examples/app-node/phased.yaml: each child's node
// app listens on the child's unix socket; a request in flight when its
// child retires (-k graceful) completes, and only then does the app get
// TERM, on which it closes its server and exits 0; a graceful restart
// under load loses no request; a stop leaves no node process.
func TestNodeExample(t *testing.T) {
	e2e.Program(t, "node", "nodejs")
	dir := example(t, "app-node")
	s := startExample(t, dir, "phased.yaml")
	expect(t, "GET /", get(t, s.URL("/")), 200, "<h1>phased + node</h1>", "generation 1")
	if h := apiHello(t, s); h.Generation != 1 {
		t.Errorf("/api/hello: %+v", h)
	}
	expect(t, "GET /nothing", get(t, s.URL("/nothing")), 404, "not found")
	gen1 := readyApps(t, s, 1, 2)
	for _, c := range gen1 {
		if argv0(c.AppPID) != "node" {
			t.Errorf("child %d's app %d runs %q", c.PID, c.AppPID, argv0(c.AppPID))
		}
	}
	for _, l := range appStarts(s) {
		if !strings.HasPrefix(l, "unix:") || !strings.HasSuffix(l, "/app.sock") {
			t.Errorf("an app listens on %q, want the child's unix socket", l)
		}
	}

	// A request in flight while its child retires: long enough to outlast
	// the graceful restart's start of two node apps on a loaded machine.
	type result struct {
		a   answer
		err error
	}
	slow := make(chan result, 1)
	go func() {
		a, err := fetch("GET", s.URL("/slow?ms=6000"), "", "")
		slow <- result{a, err}
	}()
	for deadline := time.Now().Add(5 * time.Second); s.Status(t)["busy_workers"].(float64) < 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the slow request never reached a child: %v", s.Status(t))
		}
	}
	ctl(t, s, "-k", "graceful")
	select {
	case r := <-slow:
		t.Fatalf("the request in flight ended (%d %q %v) before its child began to drain", r.a.code, r.a.body, r.err)
	default:
	}
	r := <-slow
	if r.err != nil {
		t.Fatalf("the request in flight while its child retired: %v", r.err)
	}
	a := r.a
	servedBy := 0
	if a.code != 200 || !strings.HasPrefix(a.body, "slept 6000 ms in process ") {
		t.Fatalf("the request in flight while its child retired: %d %q", a.code, a.body)
	}
	fmt.Sscanf(strings.TrimPrefix(a.body, "slept 6000 ms in process "), "%d", &servedBy)
	fromGen1 := false
	for _, c := range gen1 {
		fromGen1 = fromGen1 || c.AppPID == servedBy
	}
	if !fromGen1 {
		t.Errorf("the slow request was served by %d, not by an app of generation 1 %v", servedBy, gen1)
	}
	var pids []int
	for _, c := range gen1 {
		pids = append(pids, c.AppPID)
	}
	e2e.WaitGone(t, pids, 35*time.Second)
	for _, c := range gen1 {
		s.Log.Wait(t, fmt.Sprintf("app %d: closed", c.AppPID), 1, 5*time.Second)
		rec := record(t, s, "app server stopped", c.AppPID)
		if rec["status"] != "exit status 0" || rec["signal"] != "terminated" {
			t.Errorf("app %d did not stop on TERM with exit status 0: %v", c.AppPID, rec)
		}
	}
	if h := apiHello(t, s); h.Generation != 2 {
		t.Errorf("after -k graceful /api/hello says %+v", h)
	}

	// A graceful restart under load.
	done := load(s, "/api/hello", 4, 20000)
	time.Sleep(100 * time.Millisecond)
	gen2 := readyApps(t, s, 2, 2)
	graceful(t, s, 2)
	res := done()
	t.Logf("graceful restart under load: %s", res)
	if res.Errors != 0 || res.Non2xx != 0 || res.Requests < 50 {
		t.Errorf("graceful restart under load: %s; want no error and no failed request", res)
	}
	for _, c := range gen2 {
		pids = append(pids, c.AppPID)
	}
	e2e.WaitGone(t, pids, 5*time.Second)
	stop(t, s, named(s.PID(), "node"))
}

// TestNodeExampleOnPort runs the example with app.listen: port, the
// variant its README shows: the app listens on the loopback port phased
// gives it in PORT.
func TestNodeExampleOnPort(t *testing.T) {
	e2e.Program(t, "node", "nodejs")
	dir := example(t, "app-node")
	s := startExample(t, dir, "phased.yaml", "app.listen=port")
	apiHello(t, s)
	starts := appStarts(s)
	if len(starts) < 2 {
		t.Fatalf("app starts: %v", starts)
	}
	for _, l := range starts {
		if !strings.HasPrefix(l, "tcp:127.0.0.1:") {
			t.Errorf("an app listens on %q, want a loopback port", l)
		}
	}
	stop(t, s, named(s.PID(), "node"))
}

// TestNodeExampleWebSockets: the example's /ws through phased, spoken to
// by a WebSocket client nobody here wrote (golang.org/x/net/websocket).
// 40 sockets stay open at once on two event children of 16 slots, each
// greeted and echoing, while a plain request is answered; no slot is busy
// for them and the status page counts 40 tunnels. On -k graceful every socket gets the app's close
// frame (its TERM handler's 1001), and a new socket lands on generation 2.
func TestNodeExampleWebSockets(t *testing.T) {
	e2e.Program(t, "node", "nodejs")
	dir := example(t, "app-node")
	s := startExample(t, dir, "phased.yaml")
	apiHello(t, s)
	const n = 40 // more than the 32 slots of two children
	dialWS := func(i int) (*websocket.Conn, string) {
		t.Helper()
		cfg, err := websocket.NewConfig("ws://"+s.Addr+"/ws", "http://"+s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second)) // the handshake's too
		ws, err := websocket.NewClient(cfg, c)
		if err != nil {
			c.Close()
			t.Fatalf("WebSocket %d, with %d open: %v", i, i, err)
		}
		t.Cleanup(func() { ws.Close() })
		var greeting string
		if err := websocket.Message.Receive(ws, &greeting); err != nil {
			t.Fatalf("WebSocket %d: no greeting: %v", i, err)
		}
		return ws, greeting
	}
	var socks []*websocket.Conn
	for i := range n {
		ws, greeting := dialWS(i)
		if !strings.HasPrefix(greeting, "hello from process ") || !strings.HasSuffix(greeting, "generation 1") {
			t.Fatalf("WebSocket %d's greeting: %q", i, greeting)
		}
		socks = append(socks, ws)
	}
	for i, ws := range socks {
		msg := fmt.Sprintf("message %d: %s", i, strings.Repeat("x", i*500)) // up to 20 KB: longer frame lengths too
		var got string
		if err := websocket.Message.Send(ws, msg); err != nil {
			t.Fatalf("WebSocket %d: send: %v", i, err)
		}
		if err := websocket.Message.Receive(ws, &got); err != nil || got != msg {
			t.Fatalf("WebSocket %d: echo of %d bytes: %d bytes, %v", i, len(msg), len(got), err)
		}
	}
	apiHello(t, s)
	if busy := s.Status(t)["busy_workers"].(float64); busy != 0 {
		t.Fatalf("%v busy slots with %d WebSockets open and no request, want none", busy, n)
	}
	code, body, err := e2e.Get(s.URL("/server-status?json"))
	var page struct {
		Async struct {
			Tunnels int `json:"conns_async_tunnel"`
		} `json:"async"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &page) != nil || page.Async.Tunnels != n {
		t.Fatalf("/server-status?json with %d WebSockets open: %d %v\n%s", n, code, err, body)
	}

	start := time.Now()
	ctl(t, s, "-k", "graceful")
	for i, ws := range socks {
		ws.SetDeadline(time.Now().Add(20 * time.Second))
		var got string
		if err := websocket.Message.Receive(ws, &got); err != io.EOF {
			t.Fatalf("WebSocket %d after -k graceful: %q %v, want the app's close", i, got, err)
		}
		ws.Close() // as a browser closes its side on the close frame
	}
	t.Logf("%d WebSockets closed by their apps %v after -k graceful", n, time.Since(start).Round(time.Millisecond))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		closed, apps := 0, 0 // the apps' lines may come after their close frames
		for _, m := range regexp.MustCompile(`SIGTERM, closing after \d+ requests and (\d+) WebSockets`).FindAllStringSubmatch(s.Log.String(), -1) {
			k, _ := strconv.Atoi(m[1])
			closed, apps = closed+k, apps+1
		}
		if apps == 2 && closed == n {
			break
		}
		if apps == 2 || time.Now().After(deadline) {
			t.Fatalf("the old apps (%d) said they closed %d WebSockets on TERM, want 2 apps and %d:\n%s", apps, closed, n, s.Log)
		}
	}
	ws, greeting := dialWS(n)
	if !strings.HasSuffix(greeting, "generation 2") {
		t.Fatalf("a WebSocket after -k graceful: %q, want generation 2", greeting)
	}
	ws.Close()
	stop(t, s, named(s.PID(), "node"))
}
