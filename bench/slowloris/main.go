// Command slowloris holds many connections that send a request header one
// byte at a time, as the slowloris attack does, and measures meanwhile how
// long a normal request takes on a fresh connection (the probe).
//
//	go run ./bench/slowloris -addr 127.0.0.1:8080 [-conns 500] [-interval 5s] [-hold 10s] [-path /hello.txt]
//
// It opens -conns connections (at most 256 dials at a time, 3 s each), sends on each
// "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" and then one byte of an endless
// header every -interval. Once every connection is open (or has failed), it
// sends a probe every -probe-every for -hold: GET -path with Connection:
// close on a new connection, timed from the dial to the end of the response,
// cut at -probe-timeout. It prints one line:
//
//	conns=500 opened=500 open_at_end=498 probes=50 ok=50 failed=0 p50_ms=0.41 p99_ms=1.20 max_ms=1.31
//
// open_at_end counts the slow connections the server had not closed when the
// hold ended. A failed probe (error, timeout or a status other than 200)
// counts its time as -probe-timeout in the percentiles.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "server address")
	conns := flag.Int("conns", 500, "slow connections")
	interval := flag.Duration("interval", 5*time.Second, "time between two bytes on a slow connection")
	hold := flag.Duration("hold", 10*time.Second, "how long the probes run once the slow connections are open")
	path := flag.String("path", "/hello.txt", "path the probes ask for")
	probeEvery := flag.Duration("probe-every", 200*time.Millisecond, "time between two probes")
	probeTimeout := flag.Duration("probe-timeout", 15*time.Second, "a probe's limit")
	flag.Parse()
	if *conns < 0 || *interval <= 0 || *hold <= 0 || *probeEvery <= 0 || *probeTimeout <= 0 {
		fmt.Fprintln(os.Stderr, "slowloris: -conns must be >= 0 and the durations > 0")
		os.Exit(2)
	}

	stop := make(chan struct{})
	var opened, open atomic.Int64
	var wg, dialed sync.WaitGroup
	sem := make(chan struct{}, 256)
	for range *conns {
		wg.Add(1)
		dialed.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", *addr, 3*time.Second)
			<-sem
			if err != nil {
				dialed.Done()
				return
			}
			defer c.Close()
			opened.Add(1)
			open.Add(1)
			_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
			dialed.Done()
			if err != nil {
				open.Add(-1)
				return
			}
			drip(c, *interval, stop, &open)
		}()
	}
	dialed.Wait()

	var lat []time.Duration
	failed := 0
	end := time.Now().Add(*hold)
	for time.Now().Before(end) {
		d, ok := probe(*addr, *path, *probeTimeout)
		if !ok {
			failed++
			d = *probeTimeout
		}
		lat = append(lat, d)
		time.Sleep(*probeEvery)
	}
	atEnd := open.Load()
	close(stop)
	wg.Wait()

	slices.Sort(lat)
	fmt.Printf("conns=%d opened=%d open_at_end=%d probes=%d ok=%d failed=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
		*conns, opened.Load(), atEnd, len(lat), len(lat)-failed, failed,
		ms(pct(lat, 50)), ms(pct(lat, 99)), ms(pct(lat, 100)))
}

// drip sends one byte of an endless header every interval until stop, or
// until the server closes the connection (then open is decremented).
func drip(c net.Conn, interval time.Duration, stop <-chan struct{}, open *atomic.Int64) {
	closed := make(chan struct{})
	go func() { // notices the server's close (or its answer) at once
		_, _ = io.Copy(io.Discard, c)
		close(closed)
	}()
	header := []byte("X-Slow: ")
	t := time.NewTicker(interval)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-closed:
			open.Add(-1)
			return
		case <-t.C:
			b := byte('a' + i%26)
			if i < len(header) {
				b = header[i]
			}
			if _, err := c.Write([]byte{b}); err != nil {
				open.Add(-1)
				return
			}
		}
	}
}

// probe times one GET on a new connection; ok is false on an error, a
// timeout or a status other than 200.
func probe(addr, path string, timeout time.Duration) (time.Duration, bool) {
	t0 := time.Now()
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return time.Since(t0), false
	}
	defer c.Close()
	_ = c.SetDeadline(t0.Add(timeout))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path); err != nil {
		return time.Since(t0), false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return time.Since(t0), false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return time.Since(t0), err == nil && resp.StatusCode == http.StatusOK
}

func pct(s []time.Duration, p int) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := (len(s)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	return s[i-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
