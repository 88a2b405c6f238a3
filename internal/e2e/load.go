package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"
)

// LoadResult counts what clients saw during a load run.
type LoadResult struct {
	Requests   int           // responses received
	Errors     int           // requests without a response: refused, reset, EOF, timeouts
	Resets     int           // of Errors: connection reset by peer or broken pipe
	Refused    int           // of Errors: connection refused
	Non2xx     int           // responses with a status outside 2xx
	MaxLatency time.Duration // slowest request
	Samples    []string      // the first few errors, for the failure message
}

func (r LoadResult) String() string {
	return fmt.Sprintf("%d requests, %d errors, %d non-2xx, max latency %s %v",
		r.Requests, r.Errors, r.Non2xx, r.MaxLatency.Round(time.Millisecond), r.Samples)
}

// Load runs clients concurrent HTTP/1.1 clients against addr until stop is
// closed or limit requests have been sent in all, and returns what they saw.
// It speaks HTTP over raw connections on purpose: net/http's client retries a
// request silently when a kept-alive connection breaks, which would hide
// exactly the failures these tests exist to catch. With keepAlive, a client
// reuses its connection until the server answers "Connection: close".
func Load(addr, path string, clients int, keepAlive bool, limit int, stop <-chan struct{}) LoadResult {
	return LoadFrom("", addr, path, clients, keepAlive, limit, stop)
}

// LoadFrom is Load with the clients' connections bound to the source
// address src ("127.0.0.2"; "" lets the system choose), so that a test can
// tell them from a proxy's in a server's logs.
func LoadFrom(src, addr, path string, clients int, keepAlive bool, limit int, stop <-chan struct{}) LoadResult {
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	var (
		mu    sync.Mutex
		total LoadResult
		sent  int
		wg    sync.WaitGroup
	)
	take := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if sent >= limit {
			return false
		}
		sent++
		return true
	}
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r LoadResult
			var conn net.Conn
			var br *bufio.Reader
			defer func() {
				if conn != nil {
					conn.Close()
				}
				mu.Lock()
				total.Requests += r.Requests
				total.Errors += r.Errors
				total.Resets += r.Resets
				total.Refused += r.Refused
				total.Non2xx += r.Non2xx
				total.MaxLatency = max(total.MaxLatency, r.MaxLatency)
				if len(total.Samples) < 5 {
					total.Samples = append(total.Samples, r.Samples...)
				}
				mu.Unlock()
			}()
			fail := func(err error) {
				r.Errors++
				switch {
				case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
					r.Resets++
				case errors.Is(err, syscall.ECONNREFUSED):
					r.Refused++
				}
				if len(r.Samples) < 3 {
					r.Samples = append(r.Samples, err.Error())
				}
				if conn != nil {
					conn.Close()
					conn = nil
				}
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !take() {
					return
				}
				start := time.Now()
				if conn == nil {
					c, err := d.Dial("tcp", addr)
					if err != nil {
						fail(err)
						time.Sleep(5 * time.Millisecond)
						continue
					}
					conn, br = c, bufio.NewReader(c)
				}
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				connHdr := "close"
				if keepAlive {
					connHdr = "keep-alive"
				}
				if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: %s\r\n\r\n", path, addr, connHdr); err != nil {
					fail(err)
					continue
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					fail(err)
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil {
					fail(err)
					continue
				}
				r.Requests++
				r.MaxLatency = max(r.MaxLatency, time.Since(start))
				if resp.StatusCode < 200 || resp.StatusCode > 299 {
					r.Non2xx++
					if len(r.Samples) < 3 {
						r.Samples = append(r.Samples, resp.Status)
					}
				}
				if !keepAlive || resp.Close || strings.EqualFold(resp.Header.Get("Connection"), "close") {
					conn.Close()
					conn = nil
				}
			}
		}()
	}
	wg.Wait()
	return total
}
