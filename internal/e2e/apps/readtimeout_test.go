package apps

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// oneEventChild is the mpm section of an event MPM with one child of
// threads slots.
func oneEventChild(threads int) string {
	return fmt.Sprintf("mpm:\n  name: event\n  start_servers: 1\n  server_limit: 1\n  threads_per_child: %d\n"+
		"  min_spare_threads: 1\n  max_spare_threads: %d\n  max_request_workers: %d\n", threads, threads, threads)
}

// TestHTTPAppReadTimeout: with app.read_timeout at 1s, a request the app
// (testdata/httpapp, node) answers only after 4 s gets a 504 from the
// child after about a second, and the error log says which key bounded
// it; one answered in time, and a stream that pauses longer than the
// bound between its pieces once its head is out, reach the client whole.
func TestHTTPAppReadTimeout(t *testing.T) {
	app := nodeApp(t, nil, "  read_timeout: 1s\n")
	s := e2e.StartServer(t, oneEventChild(4)+app)
	get := func(path string) (int, string, time.Duration) {
		t.Helper()
		start := time.Now()
		resp, body := getWith(t, s, path)
		return resp.StatusCode, body, time.Since(start)
	}
	for i := range 2 { // a new connection to the app, then a kept one
		code, body, took := get("/hold?ms=4000&group=late")
		if code != http.StatusGatewayTimeout || took < time.Second || took > 3*time.Second {
			t.Fatalf("request %d answered after 4 s: %d %q after %v, want 504 after about 1s", i, code, body, took)
		}
		if code, body, _ := get("/hold?ms=50&group=soon"); code != 200 || body != "held soon\n" {
			t.Fatalf("request %d answered in time: %d %q", i, code, body)
		}
	}
	s.WaitLog(t, "no answer within app.read_timeout (1s)", 2, 5*time.Second)
	code, body, took := get("/stream?n=3&ms=1500")
	if code != 200 || strings.Count(body, "piece ") != 3 || took < 3*time.Second {
		t.Fatalf("a stream pausing 1.5 s: %d after %v, %q", code, took, body)
	}
}

// TestWebSocketTunnels: the built binary in front of node (the app's
// upgrade echoes every byte), event MPM, one child of 2 slots,
// app.read_timeout 2s. Four WebSockets open at once (more than the
// slots: a tunnel gives its slot back once the 101 is out) and a plain
// request is answered meanwhile; the one that talks every 300 ms is still
// open after 4.5 s, the three silent ones are open after a second and
// closed after two (nginx's proxy_read_timeout on an idle WebSocket), and
// the error log says so each time.
func TestWebSocketTunnels(t *testing.T) {
	app := nodeApp(t, nil, "  read_timeout: 2s\n")
	s := e2e.StartServer(t, oneEventChild(2)+app)
	var socks []*raw
	for i := range 4 {
		c := dial(t, s)
		c.SetDeadline(time.Now().Add(3 * time.Second))
		c.send("GET /socket HTTP/1.1\nHost: x\nConnection: Upgrade\nUpgrade: echo\n\n")
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("WebSocket %d, with %d open on a child of 2 slots: %v %v", i, i, resp, err)
		}
		if hello, err := c.br.ReadString('\n'); err != nil || hello != "hello\n" {
			t.Fatalf("WebSocket %d: the app said %q %v", i, hello, err)
		}
		socks = append(socks, c)
	}
	opened := time.Now()
	code, body, err := e2e.Get(s.URL("/server-status?json"))
	var page struct {
		Async struct {
			Tunnels int `json:"conns_async_tunnel"`
		} `json:"async"`
		Busy int `json:"busy_workers"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &page) != nil || page.Async.Tunnels != 4 || page.Busy > 1 {
		t.Fatalf("/server-status?json with four WebSockets open: %d %v, %+v; want 4 tunnels, no busy worker but the page's own\n%s", code, err, page, body)
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(s.URL("/echo"))
	if err != nil {
		t.Fatalf("a request while four WebSockets are open: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("a request while four WebSockets are open: %d", resp.StatusCode)
	}
	quiet := socks[3] // the last opened: not closed before the bound
	quiet.SetDeadline(opened.Add(time.Second))
	if n, err := quiet.br.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a silent WebSocket %v after it opened: read %d bytes, %v; want it open still", time.Since(opened), n, err)
	}
	talker := socks[0]
	for time.Since(opened) < 4500*time.Millisecond {
		talker.SetDeadline(time.Now().Add(2 * time.Second))
		talker.send("ping\n")
		if got, err := talker.br.ReadString('\n'); err != nil || got != "ping\r\n" {
			t.Fatalf("the WebSocket talking every 300 ms, after %v: %q %v", time.Since(opened), got, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	for i, c := range socks[1:] { // closed since: EOF at once
		c.SetDeadline(time.Now().Add(time.Second))
		if n, err := c.br.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("silent WebSocket %d, 4.5 s after it opened: read %d bytes, %v; want EOF", i+1, n, err)
		}
	}
	s.WaitLog(t, "websocket closed: nothing either way within app.read_timeout", 3, 5*time.Second)

	// A graceful restart: the old child, its requests done, stops its app,
	// and its tunnels close with it; the client reconnects, to the new
	// generation. (The talker talks first: not closed for its silence.)
	talker.SetDeadline(time.Now().Add(2 * time.Second))
	talker.send("ping\n")
	if got, err := talker.br.ReadString('\n'); err != nil || got != "ping\r\n" {
		t.Fatalf("the talking WebSocket before -k graceful: %q %v", got, err)
	}
	start := time.Now()
	if code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful"); code != 0 {
		t.Fatalf("-k graceful: %d %s", code, errOut)
	}
	talker.SetDeadline(time.Now().Add(15 * time.Second))
	if got, err := talker.br.ReadString('\n'); err != io.EOF {
		t.Fatalf("a WebSocket of the old generation after -k graceful: %q %v, want it closed", got, err)
	}
	t.Logf("the old generation's WebSocket closed %v after -k graceful", time.Since(start).Round(time.Millisecond))
	if n := s.Log.Count("websocket closed: nothing either way"); n != 3 {
		t.Fatalf("%d tunnels closed for their silence, want the 3 silent ones (the talker's was the restart's)", n)
	}
	c := dial(t, s)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.send("GET /socket HTTP/1.1\nHost: x\nConnection: Upgrade\nUpgrade: echo\n\n")
	if resp, err := http.ReadResponse(c.br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("a WebSocket after -k graceful: %v %v", resp, err)
	}
}
