package childrt

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/accesslog"
	"github.com/phasedhq/phased/internal/clientip"
	"github.com/phasedhq/phased/internal/scoreboard"
)

// healthRuntime serves slowHandler (and the fast path when fast) with the
// health endpoints on /livez and /readyz open to allow, trusting trusted's
// X-Forwarded-For, with an access log in log.
func healthRuntime(t *testing.T, fast bool, allow, trusted []string) (addr string, b *scoreboard.Board, log *syncBuffer) {
	t.Helper()
	rt, addr, events, b := modelRuntime(t, ModelWorker, 4)
	if fast {
		rt.Fast = testFast{}
	}
	rt.health = newHealth("/livez", "/readyz", clientip.MustParseNets(allow...), b)
	var err error
	if rt.realIP, err = clientip.NewResolver(clientip.MustParseNets(trusted...), "X-Forwarded-For"); err != nil {
		t.Fatal(err)
	}
	log = new(syncBuffer)
	rt.access, rt.format = accesslog.NewWriter(log, accesslog.WriterOptions{}), accesslog.FormatCommon
	serveForTest(t, rt, events, slowHandler)
	return addr, b, log
}

func probe(t *testing.T, addr, method, path string, headers ...string) reply {
	t.Helper()
	raw := method + " " + path + " HTTP/1.1\r\nHost: x\r\n" + strings.Join(headers, "") + "\r\n"
	r, c := exchange(t, addr, raw, 1, method)
	c.Close() // a worker slot each, while open
	return r[0]
}

// TestHealth: liveness and readiness, on the fast path and through
// net/http alike: 200 while all is well; readiness 503 once the master
// says it stops, liveness still 200; both 503 when the master's heartbeat
// is older than masterSilence; 403 to a client outside health.allow; the
// answers cost no access-log line and no scoreboard request.
func TestHealth(t *testing.T) {
	for _, fast := range []bool{true, false} {
		name := map[bool]string{true: "fast", false: "net/http"}[fast]
		t.Run(name, func(t *testing.T) {
			addr, b, log := healthRuntime(t, fast, []string{"127.0.0.0/8"}, nil)
			b.Beat(time.Now())
			check := func(path string, code int, body string) {
				t.Helper()
				r := probe(t, addr, "GET", path)
				if r.code != code || r.body != body || r.hdr.Get("Cache-Control") != "no-store" || r.hdr.Get("Content-Type") != "text/plain; charset=utf-8" {
					t.Fatalf("GET %s: %d %q %v, want %d %q", path, r.code, r.body, r.hdr, code, body)
				}
				if h := probe(t, addr, "HEAD", path); h.code != code || h.body != "" {
					t.Fatalf("HEAD %s: %d %q", path, h.code, h.body)
				}
			}
			check("/livez", 200, "ok\n")
			check("/readyz", 200, "ok\n")
			b.SetStopping()
			check("/readyz", 503, "stopping\n")
			check("/livez", 200, "ok\n")
			if r := probe(t, addr, "GET", "/a"); r.code != 200 {
				t.Fatalf("a request while stopping: %d", r.code)
			}
			b.Beat(time.Now().Add(-masterSilence - time.Second))
			check("/livez", 503, "master not responding\n")
			check("/readyz", 503, "master not responding\n")
			b.Beat(time.Now())
			check("/livez", 200, "ok\n")

			var requests uint64
			for _, ws := range b.Snapshot().Workers {
				for _, w := range ws {
					requests += w.Requests
				}
			}
			if requests != 1 { // the /a request alone
				t.Errorf("the scoreboard counted %d requests, want 1", requests)
			}
			time.Sleep(1200 * time.Millisecond) // the access log's flush
			if lines := strings.Count(log.String(), "\n"); lines != 1 || !strings.Contains(log.String(), "GET /a ") {
				t.Errorf("access log:\n%s", log.String())
			}
		})
	}
}

// TestHealthAllow: a probe from outside health.allow gets 403; the allow
// list is checked against the real client, which a trusted proxy's
// X-Forwarded-For names, and never against what an untrusted one claims.
func TestHealthAllow(t *testing.T) {
	for _, fast := range []bool{true, false} {
		name := map[bool]string{true: "fast", false: "net/http"}[fast]
		t.Run(name, func(t *testing.T) {
			addr, _, _ := healthRuntime(t, fast, []string{"192.0.2.0/24"}, nil)
			if r := probe(t, addr, "GET", "/livez"); r.code != 403 {
				t.Fatalf("loopback outside allow: %d", r.code)
			}
			if r := probe(t, addr, "GET", "/readyz", "X-Forwarded-For: 192.0.2.9\r\n"); r.code != 403 {
				t.Fatalf("an untrusted peer's X-Forwarded-For was believed: %d", r.code)
			}

			addr, _, _ = healthRuntime(t, fast, []string{"192.0.2.0/24"}, []string{"127.0.0.0/8"})
			if r := probe(t, addr, "GET", "/readyz", "X-Forwarded-For: 192.0.2.9\r\n"); r.code != 200 {
				t.Fatalf("a trusted proxy's client inside allow: %d", r.code)
			}
			if r := probe(t, addr, "GET", "/readyz", "X-Forwarded-For: 192.0.2.9, 198.51.100.1\r\n"); r.code != 403 {
				t.Fatalf("the real client outside allow: %d", r.code)
			}
			if r := probe(t, addr, "GET", "/readyz"); r.code != 403 {
				t.Fatalf("the trusted proxy itself, outside allow: %d", r.code)
			}
		})
	}
}

// TestRealClient: a trusted proxy's X-Forwarded-For names the client in the
// access log and the scoreboard, on both paths; an untrusted peer's is
// ignored; a request naming its client twice leaves the fast path and is
// read whole by net/http.
func TestRealClient(t *testing.T) {
	for _, fast := range []bool{true, false} {
		name := map[bool]string{true: "fast", false: "net/http"}[fast]
		t.Run(name, func(t *testing.T) {
			path := "/b"
			if fast {
				path = "/a"
			}
			addr, b, log := healthRuntime(t, fast, nil, []string{"127.0.0.0/8"})
			if r := probe(t, addr, "GET", path, "X-Forwarded-For: 6.6.6.6, 192.0.2.9\r\n"); r.code != 200 {
				t.Fatal(r.code)
			}
			found := false
			for _, ws := range b.Snapshot().Workers {
				for _, w := range ws {
					found = found || w.Client.String() == "192.0.2.9"
				}
			}
			if !found {
				t.Error("the scoreboard has no worker whose client is 192.0.2.9")
			}
			r := probe(t, addr, "GET", path, "X-Forwarded-For: 6.6.6.6\r\n", "X-Forwarded-For: 192.0.2.10\r\n")
			if r.code != 200 || r.path != "slow" {
				t.Fatalf("two header lines: %d %s", r.code, r.path)
			}
			time.Sleep(1200 * time.Millisecond)
			lines := strings.Split(strings.TrimSpace(log.String()), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "192.0.2.9 ") || !strings.HasPrefix(lines[1], "192.0.2.10 ") {
				t.Fatalf("access log:\n%s", log.String())
			}
		})
	}
	addr, _, log := healthRuntime(t, true, nil, []string{"10.0.0.0/8"})
	probe(t, addr, "GET", "/a", "X-Forwarded-For: 192.0.2.9\r\n")
	time.Sleep(1200 * time.Millisecond)
	if !strings.HasPrefix(log.String(), "127.0.0.1 ") {
		t.Fatalf("an untrusted peer's header was believed:\n%s", log.String())
	}
}

// BenchmarkProbe is one readiness probe through a child, over loopback
// keep-alive connections, on the fast path (phased's own children) and
// through net/http (a Go app's children), each with the scoreboard a
// master gives: what a load balancer's or kubelet's check costs a child.
// The -newconn variants open a connection per probe, as the kubelet and
// HAProxy's checks do. The client runs on the same machine: ns/op is an
// upper bound of the child's share.
func BenchmarkProbe(b *testing.B) {
	for _, v := range []struct{ fast, newConn bool }{{true, false}, {false, false}, {true, true}} {
		name := map[bool]string{true: "fast", false: "net/http"}[v.fast]
		if v.newConn {
			name += "-newconn"
		}
		fast := v.fast
		b.Run(name, func(b *testing.B) {
			rt, addr, events, board := modelRuntime(b, ModelWorker, 32)
			if fast {
				rt.Fast = testFast{}
			}
			board.Beat(time.Now())
			rt.health = newHealth("/livez", "/readyz", clientip.MustParseNets("127.0.0.0/8"), board)
			c, err := scoreboard.CreateCounters()
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			rt.counters = c
			go func() {
				for events.Scan() {
				}
			}()
			sigs := make(chan os.Signal, 1)
			done := make(chan error, 1)
			go func() { done <- rt.serve(http.NotFoundHandler(), sigs) }()
			if v.newConn {
				probeNewConns(b, addr)
			} else {
				loadPath(b, addr, "/readyz", "ok\n")
			}
			sigs <- syscall.SIGINT
			<-done
		})
	}
}

// BenchmarkProbeAnswer is a child's own work for one readiness probe,
// without the network: the allow check, the scoreboard's heartbeat and
// stopping word, the answer's bytes (the fast path's).
func BenchmarkProbeAnswer(b *testing.B) {
	board, err := scoreboard.Create("bench", 1, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer board.Close()
	board.Beat(time.Now())
	s := &server{health: newHealth("/livez", "/readyz", clientip.MustParseNets("127.0.0.0/8", "::1/128"), board)}
	req := fastRequest{path: []byte("/readyz"), proto: "HTTP/1.1"}
	client := netip.MustParseAddr("127.0.0.1")
	out := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		out = s.answerHealth(out[:0], &req, client, time.Now())
	}
	if !bytes.HasSuffix(out, []byte("ok\n")) {
		b.Fatalf("%q", out)
	}
}

// probeNewConns sends b.N readiness probes to addr, each on a connection
// of its own, from 16 goroutines, and reports probes/s.
func probeNewConns(b *testing.B, addr string) {
	req := []byte("GET /readyz HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
	var left, failed atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range 16 {
		wg.Go(func() {
			buf := make([]byte, 512)
			for left.Add(-1) >= 0 {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					failed.Add(1)
					return
				}
				c.Write(req)
				n, _ := io.ReadFull(c, buf)
				c.Close()
				if !bytes.Contains(buf[:n], []byte("200 OK")) {
					failed.Add(1)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d probes failed", n)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "probes/s")
}
