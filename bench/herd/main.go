// Command herd measures the thundering herd of prefork children sharing one
// listening socket: failed accepts per connection, throughput, latency and
// the children's CPU, with and without the accept mutex.
//
//	go run ./bench/herd [-children 32] [-n 20000] [-c 32] [-modes netpoller,epoll,exclusive,wakeone,mutex] [-child-gomaxprocs 0]
//
// For each mode it opens a listening socket on 127.0.0.1:0, starts the
// children with the socket as their descriptor 3, drives -n HTTP/1.0
// requests without keep-alive from -c concurrent clients, then stops every
// child (SIGTERM by pid, SIGKILL by pid if it lingers) and collects its
// counters. Modes:
//
//	netpoller  net.FileListener, as a plain Go child serves today
//	epoll      the netpoller's epoll registration (no EPOLLEXCLUSIVE) by
//	           hand, so that the EAGAINs after a wake-up can be counted
//	exclusive  the same with EPOLLEXCLUSIVE, edge-triggered, for reference
//	wakeone    internal/acceptmutex.ListenWakeOne, what a prefork child does
//	           by default (accept_mutex epoll): an epoll set of its own,
//	           EPOLLEXCLUSIVE, level-triggered, no lock
//	mutex      internal/acceptmutex.Listen (flock, poll, accept4): Apache's
//	           AcceptMutex flock (accept_mutex flock)
//
// The children are internal/acceptmutex/internal/herdchild, built here
// with `go build`: an sdk/internal package cannot be imported from bench/,
// so the program that links it lives under sdk/. -child names a binary
// already built instead.
//
// Columns: failed = accepts that returned EAGAIN after a wake-up; wake/conn
// = wake-ups (epoll_wait or poll reporting the socket readable) per
// connection; cpu/conn and runs/conn = the children's on-CPU time and number
// of times scheduled during the load (from /proc/PID/task/*/schedstat),
// per connection.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

const childPkg = "github.com/phasedhq/phased/internal/acceptmutex/internal/herdchild"

type options struct {
	children int
	requests int
	clients  int
	modes    []string
	child    string
	// gomaxprocs is the children's GOMAXPROCS; 0 leaves it to the runtime.
	gomaxprocs int
}

func main() {
	var o options
	modes := flag.String("modes", "netpoller,epoll,exclusive,wakeone,mutex", "comma-separated modes: netpoller, epoll, exclusive, wakeone, mutex")
	flag.IntVar(&o.children, "children", 32, "prefork children")
	flag.IntVar(&o.requests, "n", 20000, "requests per mode")
	flag.IntVar(&o.clients, "c", 32, "concurrent clients")
	flag.IntVar(&o.gomaxprocs, "child-gomaxprocs", 0, "GOMAXPROCS of the children (0: the runtime's default)")
	flag.StringVar(&o.child, "child", "", "prebuilt herdchild binary (default: go build "+childPkg+")")
	flag.Parse()
	o.modes = strings.Split(*modes, ",")
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "herd:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	for _, m := range o.modes {
		if !slices.Contains([]string{"netpoller", "epoll", "exclusive", "wakeone", "mutex"}, m) {
			return fmt.Errorf("unknown mode %q", m)
		}
	}
	if o.children < 1 || o.requests < 1 || o.clients < 1 {
		return errors.New("-children, -n and -c must be positive")
	}
	dir, err := os.MkdirTemp("", "herd")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if o.child == "" {
		o.child = filepath.Join(dir, "herdchild")
		build := exec.Command("go", "build", "-o", o.child, childPkg)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building %s: %w", childPkg, err)
		}
	}

	var results []result
	for _, m := range o.modes {
		r, err := measure(o, m, filepath.Join(dir, m+".lock"))
		if err != nil {
			return fmt.Errorf("mode %s: %w", m, err)
		}
		results = append(results, r)
		fmt.Fprintf(os.Stderr, "herd: %s done in %s\n", m, r.elapsed.Round(time.Millisecond))
	}

	procs := "default"
	if o.gomaxprocs > 0 {
		procs = strconv.Itoa(o.gomaxprocs)
	}
	fmt.Printf("%d children (GOMAXPROCS %s), %d requests per mode, %d clients, HTTP/1.0 without keep-alive, 127.0.0.1, %d CPUs\n\n",
		o.children, procs, o.requests, o.clients, runtime.NumCPU())
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\trequests\terrors\treq/s\taccepted\tfailed\tfailed/conn\twake/conn\tcpu/conn\truns/conn\tp50\tp99\tmax\t")
	for _, r := range results {
		conns := float64(r.ok)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%d\t%s\t%s\t%s\t%.1fµs\t%.2f\t%s\t%s\t%s\t\n",
			r.mode, o.requests, r.errors, conns/r.elapsed.Seconds(), r.accepted,
			optional(r.failed, "%d", 1), optional(r.failed, "%.2f", conns), optional(r.wakeups, "%.2f", conns),
			float64(r.cpu.Microseconds())/conns, float64(r.runs)/conns,
			ms(r.p50), ms(r.p99), ms(r.max))
	}
	return tw.Flush()
}

// optional formats n/div, or "-" when n was not counted (negative).
func optional(n int64, format string, div float64) string {
	if n < 0 {
		return "-"
	}
	if format == "%d" {
		return strconv.FormatInt(n, 10)
	}
	return fmt.Sprintf(format, float64(n)/div)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

type result struct {
	mode                      string
	ok, errors                int
	elapsed                   time.Duration
	accepted, failed, wakeups int64 // failed, wakeups: -1 when not counted
	cpu                       time.Duration
	runs                      uint64
	p50, p99, max             time.Duration
}

type child struct {
	cmd    *exec.Cmd
	stdout *bufio.Reader
	waited bool
}

func measure(o options, mode, lockPath string) (result, error) {
	r := result{mode: mode}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return r, err
	}
	addr := ln.Addr().String()
	f, err := inheritable(ln.(*net.TCPListener))
	if err != nil {
		ln.Close()
		return r, err
	}

	var children []*child
	defer func() {
		// Whatever happened, no child outlives the mode.
		for _, c := range children {
			if !c.waited {
				c.cmd.Process.Kill()
				c.cmd.Wait()
			}
		}
	}()
	for range o.children {
		c, err := startChild(o.child, mode, lockPath, o.gomaxprocs, f)
		if err != nil {
			f.Close()
			ln.Close()
			return r, err
		}
		children = append(children, c)
	}
	for _, c := range children {
		if err := expectLine(c, "ready", 10*time.Second); err != nil {
			return r, err
		}
	}
	// The children hold the socket now; the parent must not accept.
	f.Close()
	ln.Close()

	before := make([]sched, len(children))
	for i, c := range children {
		before[i] = readSched(c.cmd.Process.Pid)
	}
	lat, errs, elapsed := load(addr, o.requests, o.clients)
	for i, c := range children {
		after := readSched(c.cmd.Process.Pid)
		r.cpu += after.run - before[i].run
		r.runs += after.slices - before[i].slices
	}
	r.elapsed = elapsed
	r.errors = errs
	r.ok = len(lat)
	if r.ok == 0 {
		return r, errors.New("no request succeeded")
	}
	slices.Sort(lat)
	r.p50, r.p99, r.max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]

	for _, c := range children {
		c.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range children {
		acc, failed, wakeups, err := readStats(c)
		if err != nil {
			return r, err
		}
		r.accepted += acc
		if failed < 0 || r.failed < 0 {
			r.failed = -1
		} else {
			r.failed += failed
		}
		if wakeups < 0 || r.wakeups < 0 {
			r.wakeups = -1
		} else {
			r.wakeups += wakeups
		}
		if err := waitChild(c, 5*time.Second); err != nil {
			return r, err
		}
	}
	return r, nil
}

// inheritable duplicates ln's socket as an *os.File to pass in
// exec.Cmd.ExtraFiles. Not TCPListener.File: exec calls Fd on each extra
// file, and Fd on a file from a net File method puts the socket (shared by
// every child) back in blocking mode, under the feet of the children already
// running.
func inheritable(ln *net.TCPListener) (*os.File, error) {
	rc, err := ln.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, os.NewSyscallError("fcntl", dupErr)
	}
	return os.NewFile(uintptr(fd), "listener"), nil
}

func startChild(bin, mode, lockPath string, gomaxprocs int, f *os.File) (*child, error) {
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "HERD_MODE="+mode, "HERD_LOCK="+lockPath)
	if gomaxprocs > 0 {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(gomaxprocs))
	}
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &child{cmd: cmd, stdout: bufio.NewReader(out)}, nil
}

// expectLine reads one line from c within d and checks its first word.
func expectLine(c *child, word string, d time.Duration) error {
	line, err := readLine(c, d)
	if err != nil {
		return err
	}
	if f := strings.Fields(line); len(f) == 0 || f[0] != word {
		return fmt.Errorf("child %d: got %q, want %s", c.cmd.Process.Pid, line, word)
	}
	return nil
}

func readLine(c *child, d time.Duration) (string, error) {
	type res struct {
		line string
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		line, err := c.stdout.ReadString('\n')
		ch <- res{line, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return "", fmt.Errorf("child %d: reading stdout: %w", c.cmd.Process.Pid, r.err)
		}
		return r.line, nil
	case <-time.After(d):
		return "", fmt.Errorf("child %d: no line within %s", c.cmd.Process.Pid, d)
	}
}

func readStats(c *child) (accepted, failed, wakeups int64, err error) {
	line, err := readLine(c, 5*time.Second)
	if err != nil {
		return 0, 0, 0, err
	}
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "stats" {
		return 0, 0, 0, fmt.Errorf("child %d: got %q, want stats", c.cmd.Process.Pid, line)
	}
	var n [3]int64
	for i, s := range f[1:] {
		if s == "-" {
			n[i] = -1
			continue
		}
		if n[i], err = strconv.ParseInt(s, 10, 64); err != nil {
			return 0, 0, 0, fmt.Errorf("child %d: %q: %w", c.cmd.Process.Pid, line, err)
		}
	}
	return n[0], n[1], n[2], nil
}

// waitChild reaps c, killing it (by its pid) if it has not exited within d.
func waitChild(c *child, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		c.waited = true
		if err != nil {
			return fmt.Errorf("child %d: %w", c.cmd.Process.Pid, err)
		}
		return nil
	case <-time.After(d):
		c.cmd.Process.Kill()
		<-done
		c.waited = true
		return fmt.Errorf("child %d did not exit within %s of SIGTERM", c.cmd.Process.Pid, d)
	}
}

const request = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"

// load sends n requests from c clients and returns the latencies of the
// successful ones, the number of failures and the wall time.
func load(addr string, n, c int) ([]time.Duration, int, time.Duration) {
	var next atomic.Int64
	var errs atomic.Int64
	var mu sync.Mutex
	lat := make([]time.Duration, 0, n)
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Go(func() {
			mine := make([]time.Duration, 0, n/c+1)
			for next.Add(1) <= int64(n) {
				d, err := fetch(addr)
				if err != nil {
					if errs.Add(1) <= 5 {
						fmt.Fprintln(os.Stderr, "herd: request:", err)
					}
					continue
				}
				mine = append(mine, d)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return lat, int(errs.Load()), time.Since(start)
}

func fetch(addr string) (time.Duration, error) {
	start := time.Now()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(start.Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		return 0, err
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		return 0, err
	}
	if !strings.HasPrefix(string(b), "HTTP/1.0 200 ") {
		return 0, fmt.Errorf("response %q", b)
	}
	return time.Since(start), nil
}

type sched struct {
	run    time.Duration
	slices uint64
}

// readSched sums /proc/PID/task/*/schedstat: time on CPU and the number of
// times the process's threads were scheduled.
func readSched(pid int) sched {
	var s sched
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 3 {
			continue
		}
		run, _ := strconv.ParseUint(f[0], 10, 64)
		slices, _ := strconv.ParseUint(f[2], 10, 64)
		s.run += time.Duration(run)
		s.slices += slices
	}
	return s
}
