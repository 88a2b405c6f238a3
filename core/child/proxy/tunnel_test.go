package proxy

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTunnelIdleBound: with app.read_timeout set, a WebSocket's tunnel
// that carries bytes more often than the bound stays open past it; once
// silent both ways for the bound, phased closes both the client's
// connection and the app's, and logs it. Without the bound
// (app.read_timeout 0) a silent tunnel stays open.
func TestTunnelIdleBound(t *testing.T) {
	const timeout = 300 * time.Millisecond
	appClosed := make(chan struct{}, 4)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("app: hijack: %v", err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(c, brw) // echo until the child closes it
		appClosed <- struct{}{}
	})
	p, _ := testApp(t, app, time.Minute)
	var logs strings.Builder
	var logMu sync.Mutex
	p.o.Log = slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)

	open := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", front.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		io.WriteString(c, "GET /socket HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		return c, br
	}
	echoes := func(c net.Conn, br *bufio.Reader, msg string) error {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		defer c.SetDeadline(time.Time{})
		if _, err := io.WriteString(c, msg); err != nil {
			return err
		}
		got := make([]byte, len(msg))
		_, err := io.ReadFull(br, got)
		return err
	}

	p.o.ReadTimeout = timeout
	c, br := open()
	start := time.Now()
	var silent time.Time                // since the last bytes
	for time.Since(start) < 4*timeout { // talks every third of the bound
		if err := echoes(c, br, "ping\n"); err != nil {
			t.Fatalf("a tunnel talking every %v was closed after %v: %v", timeout/3, time.Since(start), err)
		}
		silent = time.Now()
		time.Sleep(timeout / 3)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := br.Read(make([]byte, 1)); err == nil {
		t.Fatalf("a silent tunnel sent %d bytes", n)
	}
	if took := time.Since(silent); took < timeout || took > timeout+2*time.Second {
		t.Fatalf("a silent tunnel was closed after %v, want app.read_timeout (%v) and little more", took, timeout)
	}
	select {
	case <-appClosed:
	case <-time.After(2 * time.Second):
		t.Fatal("the app's side of a silent tunnel stayed open")
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		logMu.Lock()
		logged := strings.Contains(logs.String(), "websocket closed: nothing either way within app.read_timeout") &&
			strings.Contains(logs.String(), "read_timeout=300ms")
		logMu.Unlock()
		if logged {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line for the silent tunnel:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	p.o.ReadTimeout = 0
	c, br = open()
	time.Sleep(3 * timeout)
	if err := echoes(c, br, "still there\n"); err != nil {
		t.Fatalf("without app.read_timeout a tunnel silent for %v was closed: %v", 3*timeout, err)
	}
}
