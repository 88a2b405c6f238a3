package childrt

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/contract"
	"github.com/phasedhq/phased/internal/scoreboard"
)

// BenchmarkServe is the request path of a child, over loopback with 16
// keep-alive clients sending raw requests, next to a bare net/http server
// with the same handler: the difference is what a child adds per request
// (connection tracking, scoreboard, counters, slots). The handler writes a
// 6-byte body from memory, as phased's static handler does for a cached
// file (core/child/static has the handler's own benchmarks). The -fast variants
// answer through the fast path (fast.go), as the static handler does for
// the files it holds in memory; the plain ones go through net/http, as
// every other handler. The -plainio variants take the fast path with the
// connection's own Read and Write instead of raw system calls (rawio.go).
// The -tls variants serve a TLS listener (ECDSA P-256, TLS 1.3, HTTP/1.1 by
// ALPN), through net/http or the fast path over crypto/tls (tlsfast.go);
// their clients' TLS runs in the same process. Figures in req/s; profile with
//
//	go test -run '^$' -bench Serve -cpuprofile cpu.out ./sdk/child
func BenchmarkServe(b *testing.B) {
	body := []byte("hello\n")
	ctype, length := []string{"text/plain; charset=utf-8"}, []string{"6"}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = ctype
		w.Header()["Content-Length"] = length
		w.Write(body)
	})
	b.Run("bare", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: h}
		go srv.Serve(ln)
		defer srv.Close()
		load(b, ln.Addr().String())
	})
	fast := fastBytes{
		header: []byte("Content-Type: text/plain; charset=utf-8\r\nContent-Length: 6\r\n"),
		body:   body,
	}
	for _, v := range []struct {
		m                    Model
		fast, plainIO, tlsOn bool
	}{
		{ModelWorker, false, false, false}, {ModelEvent, false, false, false},
		{ModelWorker, true, true, false}, {ModelEvent, true, true, false},
		{ModelWorker, true, false, false}, {ModelEvent, true, false, false},
		{ModelEvent, false, false, true}, {ModelEvent, true, false, true},
	} {
		name := string(v.m)
		if v.fast {
			name += "-fast"
		}
		if v.plainIO {
			name += "-plainio"
		}
		if v.tlsOn {
			name += "-tls"
		}
		b.Run(name, func(b *testing.B) {
			if v.plainIO {
				rawIOEnabled = false
				defer func() { rawIOEnabled = true }()
			}
			rt, addr, events, _ := modelRuntime(b, v.m, 32)
			if v.fast {
				rt.Fast = fast
			}
			c, err := scoreboard.CreateCounters()
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			rt.counters = c
			dial := func() (net.Conn, error) { return net.Dial("tcp", addr) }
			if v.tlsOn {
				certPEM, keyPEM := selfSigned(b)
				rt.lopts = []contract.Listener{{Addr: addr, TLS: &contract.TLS{
					Certificates: []contract.Certificate{{Cert: certPEM, Key: keyPEM}}, MinVersion: tls.VersionTLS12}}}
				pool := x509.NewCertPool()
				pool.AppendCertsFromPEM(certPEM)
				cfg := &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
				dial = func() (net.Conn, error) { return tls.Dial("tcp", addr, cfg) }
			}
			go io.Copy(io.Discard, eventReader(events))
			sigs := make(chan os.Signal, 1)
			done := make(chan error, 1)
			go func() { done <- rt.serve(h, sigs) }()
			loadDial(b, dial, "/hello.txt", "hello\n")
			sigs <- syscall.SIGINT
			<-done
		})
	}
}

// eventReader turns the events scanner back into a reader, so that the
// benchmark can drain it.
func eventReader(sc *bufio.Scanner) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		for sc.Scan() {
		}
		pw.Close()
	}()
	return pr
}

// fastBytes answers /hello.txt on the fast path.
type fastBytes struct{ header, body []byte }

func (f fastBytes) ServeFast(p string) ([]byte, []byte, bool) {
	return f.header, f.body, p == "/hello.txt"
}

// load sends b.N requests for /hello.txt to addr over 16 keep-alive
// connections and reports req/s.
func load(b *testing.B, addr string) { loadPath(b, addr, "/hello.txt", "hello\n") }

// loadPath sends b.N requests for path to addr over 16 keep-alive
// connections, each answered 200 with a body ending in body, and reports
// req/s.
func loadPath(b *testing.B, addr, path, body string) {
	loadDial(b, func() (net.Conn, error) { return net.Dial("tcp", addr) }, path, body)
}

// loadDial is loadPath over the connections dial makes.
func loadDial(b *testing.B, dial func() (net.Conn, error), path, body string) {
	const conns = 16
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\n\r\n")
	// Every response is as long as the first: same headers, and a Date of
	// fixed width.
	size := func() int {
		c, err := dial()
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		c.Write(req)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("first response: %v %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		var buf bytes.Buffer
		c.Write(req)
		io.Copy(&buf, c)
		return buf.Len()
	}()
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	for range conns {
		wg.Go(func() {
			c, err := dial()
			if err != nil {
				failed.Add(1)
				return
			}
			defer c.Close()
			buf := make([]byte, size)
			for left.Add(-1) >= 0 {
				if _, err := c.Write(req); err != nil {
					failed.Add(1)
					return
				}
				if _, err := io.ReadFull(c, buf); err != nil || !bytes.HasSuffix(buf, []byte(body)) {
					failed.Add(1)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d connections failed", n)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}
