// Command handshake measures new TLS connections per second against a
// server: -c goroutines each open a connection, finish the TLS handshake,
// send one GET with "Connection: close", read the answer to its end and
// close, over and over for -d. With -resume each goroutine keeps the
// session ticket of its last connection and offers it on the next (a
// resumed handshake); without, every handshake is a full one. It prints
// one line:
//
//	handshakes/s 1234.5 n 12345 resumed 12345 errors 0
//
// The key exchange is X25519 (as OpenSSL 3.0's clients offer), the
// certificate is not verified (the client's work stays small and the
// same for every server). bench/tls/run.sh runs it.
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8443", "the server's host:port")
	conns := flag.Int("c", 16, "connections at a time")
	dur := flag.Duration("d", 8*time.Second, "how long to measure")
	warm := flag.Duration("warmup", time.Second, "how long to run before measuring")
	resume := flag.Bool("resume", false, "offer the last connection's session ticket (resumed handshakes)")
	path := flag.String("path", "/hello.txt", "the path each connection GETs")
	maxVersion := flag.String("max-version", "1.3", "the highest TLS version to offer: 1.2 or 1.3")
	flag.Parse()
	var maxV uint16
	switch *maxVersion {
	case "1.2":
		maxV = tls.VersionTLS12
	case "1.3":
		maxV = tls.VersionTLS13
	default:
		slog.Error("-max-version must be 1.2 or 1.3", "got", *maxVersion)
		os.Exit(2)
	}
	if *conns < 1 || *dur <= 0 {
		slog.Error("-c must be at least 1 and -d above 0")
		os.Exit(2)
	}
	req := []byte("GET " + *path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")

	var measuring atomic.Bool
	var n, resumed, errs atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// X25519 as OpenSSL 3.0's clients (wrk, h2load, curl) offer it:
			// Go's default would add the post-quantum X25519MLKEM768,
			// which a Go server accepts and costs it more than X25519.
			cfg := &tls.Config{InsecureSkipVerify: true, ServerName: "localhost", MaxVersion: maxV, NextProtos: []string{"http/1.1"},
				CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256}}
			if *resume {
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				did, err := once(*addr, cfg, req)
				if !measuring.Load() {
					continue
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				n.Add(1)
				if did {
					resumed.Add(1)
				}
			}
		}()
	}
	time.Sleep(*warm)
	measuring.Store(true)
	t0 := time.Now()
	time.Sleep(*dur)
	measuring.Store(false)
	elapsed := time.Since(t0)
	close(stop)
	wg.Wait()
	fmt.Printf("handshakes/s %.1f n %d resumed %d errors %d\n", float64(n.Load())/elapsed.Seconds(), n.Load(), resumed.Load(), errs.Load())
	if e := firstErr.Load(); e != nil {
		slog.Warn("first error", "err", e)
	}
}

// once makes one connection: handshake, one request, its whole answer.
// It reports whether the handshake resumed a session.
func once(addr string, cfg *tls.Config, req []byte) (bool, error) {
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return false, err
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(raw, cfg)
	if err := c.Handshake(); err != nil {
		return false, err
	}
	if _, err := c.Write(req); err != nil {
		return false, err
	}
	// Reading the answer also reads the TLS 1.3 session tickets the server
	// sends after the handshake.
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return false, err
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("status %s", resp.Status)
	}
	return c.ConnectionState().DidResume, nil
}
