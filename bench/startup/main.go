// Command startup measures phased's start-up time (start to first 200) and
// the resident memory of its master and of one idle child.
//
//	go run ./bench/startup [-n 10] [-bin bin/phased] [-f phased.yaml] [-double-start-cost]
//
// It starts the binary on the embedded default config (or -f's) on a free
// loopback port in a temporary folder, polls until the first 200, records
// the time, reads VmRSS from /proc, stops the master with SIGTERM and waits
// for it.
//
// With -double-start-cost it measures what the double start adds: it
// alternates runs with double_start true and false (n of each, so drift in
// the machine's load hits both alike) and prints both medians and the
// median of the paired differences. Pass 1 launches every plugin of the
// configuration (the MPM plugin, each hook plugin) and runs the phases, so
// the cost grows with the plugins; see docs/plugins.md for figures.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

func main() {
	n := flag.Int("n", 10, "runs")
	bin := flag.String("bin", "bin/phased", "phased binary")
	conf := flag.String("f", "", "configuration file (default: the embedded one)")
	cost := flag.Bool("double-start-cost", false, "alternate double_start true and false and print the difference")
	var extra multi
	flag.Var(&extra, "c", "extra -c key=value for phased (repeatable)")
	flag.Parse()
	run := run
	if *cost {
		run = doubleStartCost
	}
	if err := run(*n, *bin, *conf, extra); err != nil {
		fmt.Fprintln(os.Stderr, "startup:", err)
		os.Exit(1)
	}
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, " ") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

// phasedArgs returns the binary's absolute path and its arguments.
func phasedArgs(bin, conf string, extra []string) (string, []string, error) {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return "", nil, err
	}
	var args []string
	if conf != "" {
		if conf, err = filepath.Abs(conf); err != nil {
			return "", nil, err
		}
		args = append(args, "-f", conf)
	}
	for _, c := range extra {
		args = append(args, "-c", c)
	}
	return bin, args, nil
}

func run(n int, bin, conf string, extra []string) error {
	bin, args, err := phasedArgs(bin, conf, extra)
	if err != nil {
		return err
	}
	var times []time.Duration
	var masterRSS, childRSS []int
	for i := range n {
		d, m, c, err := once(bin, args)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		times = append(times, d)
		masterRSS = append(masterRSS, m)
		childRSS = append(childRSS, c)
	}
	sort.Ints(masterRSS)
	sort.Ints(childRSS)
	fmt.Printf("runs: %d\n", n)
	fmt.Printf("start to first 200: %s\n", summary(times))
	fmt.Printf("RSS master (idle): median %d KiB\n", masterRSS[n/2])
	fmt.Printf("RSS child (idle):  median %d KiB\n", childRSS[n/2])
	return nil
}

// doubleStartCost alternates runs with and without the double start and
// prints what it adds to start to first 200.
func doubleStartCost(n int, bin, conf string, extra []string) error {
	bin, args, err := phasedArgs(bin, conf, extra)
	if err != nil {
		return err
	}
	var with, without, diff []time.Duration
	for i := range n {
		d2, _, _, err := once(bin, append(slices.Clone(args), "-c", "double_start=true"))
		if err != nil {
			return fmt.Errorf("run %d, double_start true: %w", i+1, err)
		}
		d1, _, _, err := once(bin, append(slices.Clone(args), "-c", "double_start=false"))
		if err != nil {
			return fmt.Errorf("run %d, double_start false: %w", i+1, err)
		}
		with, without, diff = append(with, d2), append(without, d1), append(diff, d2-d1)
	}
	fmt.Printf("runs: %d of each, alternating\n", n)
	fmt.Printf("start to first 200, double_start true:  %s\n", summary(with))
	fmt.Printf("start to first 200, double_start false: %s\n", summary(without))
	fmt.Printf("added by the double start (paired):     %s\n", summary(diff))
	return nil
}

// summary returns "median M (min A, max B)" of ds, which it sorts.
func summary(ds []time.Duration) string {
	slices.Sort(ds)
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	return fmt.Sprintf("median %s (min %s, max %s)", r(ds[len(ds)/2]), r(ds[0]), r(ds[len(ds)-1]))
}

func once(bin string, args []string) (time.Duration, int, int, error) {
	dir, err := os.MkdirTemp("", "phased-startup-")
	if err != nil {
		return 0, 0, 0, err
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, 0, err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, append(args, "-c", "listen="+addr, "-c", "error_log.level=warn", "-c", "pid_file="+filepath.Join(dir, "phased.pid"))...)
	cmd.Dir = dir
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	var d time.Duration
	for {
		resp, err := client.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				d = time.Since(start)
				break
			}
		}
		if time.Since(start) > 10*time.Second {
			return 0, 0, 0, fmt.Errorf("no 200 within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // idle
	pid := cmd.Process.Pid
	kids := e2e.Workers(pid) // phased's own children, not its plugins
	if len(kids) == 0 {
		kids = e2e.Children(pid) // app.command children (plugins too)
	}
	if len(kids) == 0 {
		return 0, 0, 0, fmt.Errorf("no children")
	}
	return d, rss(pid), rss(kids[0]), nil
}

func rss(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			n, _ := strconv.Atoi(strings.Fields(line)[1])
			return n
		}
	}
	return 0
}
