package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// Counts is what one client run saw.
type Counts struct {
	Requests int           // responses received (ab: complete requests, failed ones included)
	Failed   int           // requests that got no response: resets, refusals, EOF, timeouts, ...
	Non2xx   int           // responses outside 2xx (wrk: outside 2xx and 3xx)
	Resets   int           // of Failed: connection reset by peer / broken pipe (ab: receive errors; wrk: read+write errors)
	Refused  int           // of Failed: connection refused (ab, wrk: connect errors)
	Length   int           // ab's length errors: a body of another length than the first one's (a short body, or an error page)
	MaxStall time.Duration // slowest request (ab: longest request; wrk: latency max)
	Samples  []string      // a few errors, for the report
	Note     string        // anything odd about the client run itself
}

// Lost is what the clients lost: failures plus non-2xx answers. ab counts
// a non-2xx answer whose body is not as long as the first answer's (an
// error page) as a length error too: such a request is lost once.
func (c Counts) Lost() int { return c.Failed + c.Non2xx - min(c.Length, c.Non2xx) }

// load describes one client run. The client runs until stop is closed,
// limit requests have been sent or maxTime has passed, whichever is first.
type load struct {
	addr, path string
	conc       int
	keepAlive  bool
	limit      int
	maxTime    time.Duration
}

// client runs a load and returns what it saw.
type client interface {
	name() string
	run(l load, stop <-chan struct{}) Counts
}

// goClient is internal/e2e.Load: raw HTTP with no silent retry on a broken
// kept-alive connection, failures sorted into resets, refusals and the
// rest; from the source address src when it is set.
type goClient struct{ src string }

func (goClient) name() string { return "go" }

func (g goClient) run(l load, stop <-chan struct{}) Counts {
	bounded := make(chan struct{})
	go func() {
		select {
		case <-stop:
		case <-time.After(l.maxTime):
		}
		close(bounded)
	}()
	r := e2e.LoadFrom(g.src, l.addr, l.path, l.conc, l.keepAlive, l.limit, bounded)
	return Counts{Requests: r.Requests, Failed: r.Errors, Non2xx: r.Non2xx, Resets: r.Resets, Refused: r.Refused,
		MaxStall: r.MaxLatency, Samples: r.Samples}
}

// extClient runs an external load tool until stop is closed, then sends it
// SIGINT (ab and wrk both print their figures on SIGINT), and parses its
// output.
func runTool(bin string, args []string, stop <-chan struct{}, maxTime time.Duration) (string, error, bool) {
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err, false
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	interrupted := false
	select {
	case err := <-done:
		return out.String(), err, false
	case <-stop:
		interrupted = true
	case <-time.After(maxTime + 5*time.Second):
		interrupted = true
	}
	cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-done:
		return out.String(), err, interrupted
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		err := <-done
		return out.String(), fmt.Errorf("did not stop on SIGINT: %v", err), interrupted
	}
}

type abClient struct{}

func (abClient) name() string { return "ab" }

var (
	abComplete = regexp.MustCompile(`(?m)^Complete requests:\s+(\d+)`)
	abFailed   = regexp.MustCompile(`(?m)^Failed requests:\s+(\d+)(?:\s*\n\s*\(Connect: (\d+), Receive: (\d+), Length: (\d+), Exceptions: (\d+)\))?`)
	abNon2xx   = regexp.MustCompile(`(?m)^Non-2xx responses:\s+(\d+)`)
	abLongest  = regexp.MustCompile(`(?m)^\s*100%\s+(\d+) \(longest request\)`)
)

// run: ab -r (count a receive error and go on, rather than abort the run as
// ab does by default) -s 10 (per-request timeout) -t/-n (the bounds).
func (abClient) run(l load, stop <-chan struct{}) Counts {
	args := []string{"-r", "-s", "10", "-t", strconv.Itoa(int(l.maxTime.Seconds())), "-n", strconv.Itoa(l.limit), "-c", strconv.Itoa(l.conc)}
	if l.keepAlive {
		args = append(args, "-k")
	}
	args = append(args, "http://"+l.addr+l.path)
	out, err, interrupted := runTool("ab", args, stop, l.maxTime)
	return parseAB(out, err, interrupted)
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func parseAB(out string, err error, interrupted bool) Counts {
	var c Counts
	m := abComplete.FindStringSubmatch(out)
	if m == nil {
		c.Failed = 1
		c.Note = fmt.Sprintf("ab printed no figures (%v): %s", err, lastLines(out, 3))
		return c
	}
	c.Requests = atoi(m[1])
	if m := abFailed.FindStringSubmatch(out); m != nil {
		c.Failed = atoi(m[1])
		if m[2] != "" {
			c.Refused = atoi(m[2])
			c.Resets = atoi(m[3])
			// ab's total is the sum of its categories, and one broken
			// request counts in several (a reset is a receive error, then
			// a length mismatch, then an exception): the requests lost are
			// at least the largest category, which is what is judged.
			if d := max(c.Refused+c.Resets, atoi(m[4]), atoi(m[5])); d < c.Failed {
				c.Samples = append(c.Samples, fmt.Sprintf("ab's total %d counts one broken request once per category", c.Failed))
				c.Failed = d
			}
			c.Length = atoi(m[4])
			if n := atoi(m[4]); n > 0 {
				c.Samples = append(c.Samples, fmt.Sprintf("%d length mismatches", n))
			}
			if n := atoi(m[5]); n > 0 {
				c.Samples = append(c.Samples, fmt.Sprintf("%d exceptions", n))
			}
		}
	}
	if m := abNon2xx.FindStringSubmatch(out); m != nil {
		c.Non2xx = atoi(m[1])
	}
	if m := abLongest.FindStringSubmatch(out); m != nil {
		c.MaxStall = time.Duration(atoi(m[1])) * time.Millisecond
	}
	// Without -r these abort the run; with it ab may still print them.
	if n := strings.Count(out, "apr_socket_recv: Connection reset"); n > 0 {
		c.Samples = append(c.Samples, fmt.Sprintf("%d x apr_socket_recv: Connection reset by peer", n))
	}
	if err != nil && !interrupted {
		c.Note = fmt.Sprintf("ab: %v: %s", err, lastLines(out, 2))
	}
	return c
}

type wrkClient struct{}

func (wrkClient) name() string { return "wrk" }

var (
	wrkRequests = regexp.MustCompile(`(?m)^\s*(\d+) requests in`)
	wrkSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkLatency  = regexp.MustCompile(`(?m)^\s*Latency\s+\S+\s+\S+\s+(\S+)`)
)

// run: wrk -t min(conc,2) -c conc -d maxTime, "Connection: close" without
// keep-alive (wrk reconnects after each response then).
func (wrkClient) run(l load, stop <-chan struct{}) Counts {
	args := []string{"-t", strconv.Itoa(min(l.conc, 2)), "-c", strconv.Itoa(l.conc), "-d", fmt.Sprintf("%ds", int(l.maxTime.Seconds())), "--timeout", "10s"}
	if !l.keepAlive {
		args = append(args, "-H", "Connection: close")
	}
	args = append(args, "http://"+l.addr+l.path)
	out, err, interrupted := runTool("wrk", args, stop, l.maxTime)
	return parseWrk(out, err, interrupted)
}

func parseWrk(out string, err error, interrupted bool) Counts {
	var c Counts
	m := wrkRequests.FindStringSubmatch(out)
	if m == nil {
		c.Failed = 1
		c.Note = fmt.Sprintf("wrk printed no figures (%v): %s", err, lastLines(out, 3))
		return c
	}
	c.Requests = atoi(m[1])
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		conn, rd, wr, to := atoi(m[1]), atoi(m[2]), atoi(m[3]), atoi(m[4])
		c.Failed = conn + rd + wr + to
		c.Refused = conn
		c.Resets = rd + wr
		c.Samples = append(c.Samples, strings.TrimSpace(m[0]))
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		c.Non2xx = atoi(m[1])
	}
	if m := wrkLatency.FindStringSubmatch(out); m != nil {
		c.MaxStall = parseWrkDuration(m[1])
	}
	if err != nil && !interrupted {
		c.Note = fmt.Sprintf("wrk: %v", err)
	}
	return c
}

// parseWrkDuration reads wrk's "812.00us", "1.20ms", "2.01s", "1.00m".
func parseWrkDuration(s string) time.Duration {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0
			}
			return time.Duration(math.Round(f * float64(u.unit)))
		}
	}
	return 0
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
