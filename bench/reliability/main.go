// Command reliability is phased's reliability suite: continuous load from
// real clients (a raw-HTTP Go client, ab, wrk), with and without
// keep-alive, at concurrency 1 and several, while the server goes through
// each of its routine operations (graceful restarts, HUP, a child signalled
// by hand, recycling, an MPM switch, plugin crashes, a binary upgrade, a log
// reopen) and the hard ones (hard restart, kill -9 of a child). Each cell
// starts a fresh server on a free 127.0.0.1 port serving a 6-byte file,
// starts the load, triggers the operation about 1 s in, keeps loading for a
// while after it completed, and records requests, failed requests, non-2xx
// answers, resets, refused connections and the longest stall. Apache httpd
// (graceful, restart) and nginx (reload) go through the same cells, from
// Debian's packages, on configs of their own in a temp folder.
//
//	go run ./bench/reliability -short                  # phased only, Go client, a few seconds a cell
//	go run ./bench/reliability                         # phased, Apache, nginx; go, ab, wrk; about 15 min
//	go run ./bench/reliability -servers phased -clients go,ab -ops 'HUP,upgrade'
//	go run ./bench/reliability -apps                   # apps under recycling: phased vs Apache + Passenger (apps.go)
//	go run ./bench/reliability -apps -short            # its short form: phased alone, c=5, about a minute
//
// A routine operation fails its cell when any request is lost or a request
// stalls longer than -max-stall; a hard one when it loses more than the
// requests in flight (at most one per client connection). The exit status
// is 1 when a phased cell failed (Apache's and nginx's losses are reported,
// not judged).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// cell is one (server, operation, client, keep-alive, concurrency) run.
type cell struct {
	server    string
	op        operation
	client    string
	keepAlive bool
	conc      int
	Counts
	opTook  time.Duration
	opNote  string
	opErr   error
	verdict string // "ok", "FAIL: ...", or "" when not judged
}

type options struct {
	before, after time.Duration // load before the operation, and after it completed
	limit         int           // requests per cell, at most
	maxTime       time.Duration // load time per cell, at most
	maxStall      time.Duration // routine operations: longest acceptable stall
	judgeAll      bool          // judge Apache and nginx as well
	keepFailed    bool          // keep a failed cell's folder (logs, config) for a look
}

// runCell starts a fresh server, loads it, runs the operation, and judges.
func runCell(k kind, op operation, cl client, ka bool, conc int, o options, log io.Writer) cell {
	c := cell{server: k.name, op: op, client: cl.name(), keepAlive: ka, conc: conc}
	dir, err := os.MkdirTemp("", "phased-reliability-")
	if err != nil {
		c.opErr = err
		c.verdict = "FAIL: " + err.Error()
		return c
	}
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}()
	hold = o.before + o.after
	s := k.make(dir, op.name, conc, ka)
	if err := s.start(); err != nil {
		s.stop()
		c.opErr = fmt.Errorf("start: %v", err)
		c.verdict = "FAIL: " + c.opErr.Error()
		keep = o.keepFailed
		fmt.Fprintf(log, "   server log: %s\n", s.logTail())
		return c
	}
	defer s.stop()
	res, stop := loadAround(s, cl, load{addr: s.addr(), path: docPath, conc: conc, keepAlive: ka, limit: o.limit, maxTime: o.maxTime}, op, o.before, &c)
	select {
	case c.Counts = <-res: // the load ended before the operation's tail
		c.Note = strings.TrimSpace(c.Note + " load ended early (limit or max time)")
	case <-time.After(o.after):
		close(stop)
		c.Counts = <-res
	}
	c.verdict = judge(c, o)
	if strings.HasPrefix(c.verdict, "FAIL") {
		keep = o.keepFailed
		where := "server log"
		if keep {
			where = "kept " + dir + "; server log"
		}
		fmt.Fprintf(log, "   %s: %s\n", where, s.logTail())
	}
	return c
}

// loadAround starts the load l on s, and o.before into it the operation
// op, which it times into c; the load's counts come on the channel, and
// closing stop ends a load bounded by time.
func loadAround(s server, cl client, l load, op operation, before time.Duration, c *cell) (<-chan Counts, chan struct{}) {
	stop := make(chan struct{})
	res := make(chan Counts, 1)
	go func() { res <- cl.run(l, stop) }()
	time.Sleep(before)
	t0 := time.Now()
	c.opNote, c.opErr = s.do(op.name)
	c.opTook = time.Since(t0)
	return res, stop
}

// judge says whether a cell met its bar; Apache and nginx are only
// reported unless judgeAll.
func judge(c cell, o options) string {
	if c.server != "phased" && !o.judgeAll {
		return ""
	}
	var why []string
	if c.opErr != nil {
		why = append(why, "operation failed: "+c.opErr.Error())
	}
	if c.Requests < 10 {
		why = append(why, fmt.Sprintf("only %d requests", c.Requests))
	}
	if c.op.hard {
		if c.Lost() > c.conc {
			why = append(why, fmt.Sprintf("lost %d > %d in flight", c.Lost(), c.conc))
		}
	} else {
		if c.Lost() > 0 {
			why = append(why, fmt.Sprintf("lost %d", c.Lost()))
		}
		if c.MaxStall > o.maxStall {
			why = append(why, fmt.Sprintf("stall %s > %s", c.MaxStall.Round(time.Millisecond), o.maxStall))
		}
	}
	if len(why) == 0 {
		return "ok"
	}
	return "FAIL: " + strings.Join(why, "; ")
}

func main() { os.Exit(run()) }

func run() int {
	short := flag.Bool("short", false, "the short form: phased only, Go client, concurrency 1 and 4, shorter cells, stalls up to 200 ms")
	servers := flag.String("servers", "phased,apache,nginx", "servers to run (phased, apache, nginx)")
	clients := flag.String("clients", "go,ab,wrk", "clients to run (go, ab, wrk)")
	concs := flag.String("conc", "1,8", "concurrency levels")
	kas := flag.String("keepalive", "on,off", "keep-alive settings")
	ops := flag.String("ops", "", "comma-separated operation names to run (default: all)")
	bin := flag.String("bin", "bin/phased", "the phased binary (built by `make build`); \"\" builds one into a temp folder")
	results := flag.String("results", "bench/reliability/RESULTS.md", "where to write the tables (\"\" for nowhere)")
	maxStall := flag.Duration("max-stall", 50*time.Millisecond, "routine operations: the longest acceptable stall")
	before := flag.Duration("before", 1200*time.Millisecond, "load before the operation starts")
	after := flag.Duration("after", 1500*time.Millisecond, "load after the operation completed")
	limit := flag.Int("n", 1000000, "requests per cell, at most")
	maxTime := flag.Duration("max-time", 40*time.Second, "load time per cell, at most")
	judgeAll := flag.Bool("judge-all", false, "judge Apache and nginx against phased's bar too")
	flag.Parse()
	if *short {
		*servers, *clients = "phased", "go"
		*concs = "1,4"
		*before, *after = 700*time.Millisecond, 800*time.Millisecond
		if !flagSet("max-stall") {
			*maxStall = 200 * time.Millisecond
		}
		if !flagSet("results") {
			*results = ""
		}
	}
	o := options{before: *before, after: *after, limit: *limit, maxTime: *maxTime, maxStall: *maxStall, judgeAll: *judgeAll, keepFailed: true}
	cmdline := strings.TrimSpace("go run ./bench/reliability " + strings.Join(os.Args[1:], " "))

	tmp, err := os.MkdirTemp("", "phased-reliability-bin-")
	if err != nil {
		return fatal(err)
	}
	defer os.RemoveAll(tmp)
	os.Chmod(tmp, 0o755)
	phasedBin := *bin
	if phasedBin == "" {
		phasedBin = filepath.Join(tmp, "phased")
		if err := goBuild(phasedBin, "./cmd/phased"); err != nil {
			return fatal(err)
		}
	}
	if phasedBin, err = filepath.Abs(phasedBin); err != nil {
		return fatal(err)
	}
	if _, err := os.Stat(phasedBin); err != nil {
		return fatal(fmt.Errorf("%v (run `make build`, or -bin \"\" to build one)", err))
	}
	// A copy: others may rebuild bin/phased during a long run, and the
	// upgrade cells re-execute the binary.
	if b, err := os.ReadFile(phasedBin); err != nil {
		return fatal(err)
	} else if phasedBin = filepath.Join(tmp, "phased-under-test"); os.WriteFile(phasedBin, b, 0o755) != nil {
		return fatal(fmt.Errorf("copying the binary to %s", tmp))
	}
	hookBin := filepath.Join(tmp, "hook-warmup")
	if err := goBuild(hookBin, "./examples/hook-warmup"); err != nil {
		return fatal(err)
	}

	if *clusterMode {
		if !flagSet("conc") {
			*concs = "8"
		}
		if !flagSet("results") {
			*results = "bench/cluster/RESULTS.md"
		}
		cls, kaList, cs, err := clientSettings(*clients, *kas, *concs)
		if err != nil {
			return fatal(err)
		}
		return runCluster(phasedBin, cls, kaList, cs, o, *results, cmdline)
	}

	if *appsMode {
		if !flagSet("clients") {
			*clients = "ab"
		}
		if !flagSet("conc") {
			*concs = "1,5"
		}
		if !flagSet("n") {
			o.limit = 10000
		}
		if !flagSet("before") {
			o.before = 200 * time.Millisecond // early: the fastest server ends 10000 requests in 2 s
		}
		if !flagSet("after") {
			o.after = 0 // the load runs to its -n
		}
		if *short {
			// Under a minute: phased alone, each cell bounded in time.
			*servers, *kas, o.limit = "phased", "on,off", 1000000
			if !flagSet("conc") {
				*concs = "5"
			}
			o.before, o.after = 500*time.Millisecond, 700*time.Millisecond
			if !flagSet("results") {
				*results = ""
			}
		}
		if !flagSet("max-time") {
			o.maxTime = 5 * time.Minute
		}
		if !flagSet("max-stall") {
			// Stalls are reported; the bar catches a request left waiting
			// (a lost connection wake-up waited for ab's 10 s timeout),
			// not the load of a shared 2-core machine.
			o.maxStall = 5 * time.Second
		}
		if !flagSet("servers") && !*short {
			*servers = ""
		}
		if !flagSet("results") && !*short {
			*results = "bench/apps/RESULTS.md"
		}
		cls, kaList, cs, err := clientSettings(*clients, *kas, *concs)
		if err != nil {
			return fatal(err)
		}
		return runApps(phasedBin, *servers, split(*ops), cls, kaList, cs, o, *results, cmdline)
	}

	var kinds []kind
	for _, s := range split(*servers) {
		switch s {
		case "phased":
			kinds = append(kinds, phasedKind(phasedBin, hookBin))
		case "apache":
			kinds = append(kinds, apacheKind())
		case "nginx":
			kinds = append(kinds, nginxKind())
		default:
			return fatal(fmt.Errorf("unknown server %q", s))
		}
	}
	cls, kaList, cs, err := clientSettings(*clients, *kas, *concs)
	if err != nil {
		return fatal(err)
	}
	only := split(*ops)

	// SIGINT or TERM: finish the cell under way (its server is stopped),
	// print what ran, and leave nothing running.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	stopping := func() bool {
		select {
		case <-sigs:
			fmt.Fprintln(os.Stderr, "interrupted: stopping")
			return true
		default:
			return false
		}
	}
	quit := false

	started := time.Now()
	var all []cell
	failed := 0
	for _, k := range kinds {
		for _, op := range k.ops {
			if len(only) > 0 && !contains(only, op.name) {
				continue
			}
			for _, cl := range cls {
				for _, ka := range kaList {
					for _, conc := range cs {
						if quit = quit || stopping(); quit {
							break
						}
						c := runCell(k, op, cl, ka, conc, o, os.Stderr)
						fmt.Fprintf(os.Stderr, "%-7s %-24s %-4s ka=%-5v c=%-2d %s\n", c.server, c.op.name, c.client, c.keepAlive, c.conc, summary(c))
						if strings.HasPrefix(c.verdict, "FAIL") {
							failed++
						}
						all = append(all, c)
					}
				}
			}
		}
	}
	var out strings.Builder
	for _, k := range kinds {
		writeTable(&out, k.name, all)
	}
	fmt.Print(out.String())
	fmt.Printf("%d cells in %s, %d failed\n", len(all), time.Since(started).Round(time.Second), failed)
	if *results != "" {
		if err := writeResults(*results, cmdline, o, all, kinds, time.Since(started), failed); err != nil {
			return fatal(err)
		}
		fmt.Println("wrote", *results)
	}
	if failed > 0 {
		return 1
	}
	return 0
}

// clientSettings reads -clients, -keepalive and -conc.
func clientSettings(clients, kas, concs string) ([]client, []bool, []int, error) {
	var cls []client
	for _, c := range split(clients) {
		switch c {
		case "go":
			cls = append(cls, goClient{})
		case "ab":
			cls = append(cls, abClient{})
		case "wrk":
			cls = append(cls, wrkClient{})
		default:
			return nil, nil, nil, fmt.Errorf("unknown client %q", c)
		}
		if c != "go" {
			if _, err := exec.LookPath(c); err != nil {
				return nil, nil, nil, fmt.Errorf("%s not found (apt-get install -y apache2-utils wrk)", c)
			}
		}
	}
	var cs []int
	for _, s := range split(concs) {
		var n int
		if _, err := fmt.Sscan(s, &n); err != nil || n < 1 {
			return nil, nil, nil, fmt.Errorf("bad concurrency %q", s)
		}
		cs = append(cs, n)
	}
	var kaList []bool
	for _, s := range split(kas) {
		kaList = append(kaList, s == "on" || s == "true" || s == "1")
	}
	return cls, kaList, cs, nil
}

func summary(c cell) string {
	s := fmt.Sprintf("%6d req %d failed %d non-2xx %d resets %d refused, stall %s, op %s",
		c.Requests, c.Failed, c.Non2xx, c.Resets, c.Refused, c.MaxStall.Round(time.Millisecond), c.opTook.Round(time.Millisecond))
	if c.verdict != "" {
		s += "  " + c.verdict
	}
	if len(c.Samples) > 0 {
		s += fmt.Sprintf("  %q", c.Samples)
	}
	if c.Note != "" {
		s += "  note: " + c.Note
	}
	if c.opNote != "" {
		s += "  op: " + c.opNote
	}
	return s
}

func writeTable(w io.Writer, server string, all []cell) {
	fmt.Fprintf(w, "\n### %s\n\n", server)
	fmt.Fprintln(w, "| operation | client | keep-alive | c | requests | failed | non-2xx | resets | refused | longest stall | op took | verdict |")
	fmt.Fprintln(w, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, c := range all {
		if c.server != server {
			continue
		}
		ka := "off"
		if c.keepAlive {
			ka = "on"
		}
		name := c.op.name
		if c.op.hard {
			name += " ‡"
		}
		v := c.verdict
		if c.opErr != nil && v == "" {
			v = "operation failed: " + c.opErr.Error()
		}
		if c.Note != "" {
			v = strings.TrimSpace(v + " (" + c.Note + ")")
		}
		if c.opNote != "" {
			v = strings.TrimSpace(v + "; " + c.opNote)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %d | %d | %d | %d | %d | %d | %s | %s | %s |\n",
			name, c.client, ka, c.conc, c.Requests, c.Failed, c.Non2xx, c.Resets, c.Refused,
			fmtDur(c.MaxStall), fmtDur(c.opTook), strings.ReplaceAll(v, "|", "/"))
	}
}

func fmtDur(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return d.Round(time.Millisecond).String()
}

func writeResults(path, cmdline string, o options, all []cell, kinds []kind, took time.Duration, failed int) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Reliability suite: results\n\n")
	fmt.Fprintf(&b, "Run %s UTC, %d cells in %s, %d phased cells failed.\n\n", time.Now().UTC().Format("2006-01-02 15:04"), len(all), took.Round(time.Second), failed)
	fmt.Fprintf(&b, "Command: `%s` (from the module root, after `make build`)\n\n", cmdline)
	fmt.Fprintf(&b, "Machine: %s\n\n", machine())
	fmt.Fprintf(&b, "Each cell: a fresh server on a free 127.0.0.1 port serving a 6-byte file; the client loads it for %s, the operation runs, the load goes on %s after the operation completed, then stops (ab and wrk by SIGINT, on which both print their figures). ", o.before, o.after)
	fmt.Fprintf(&b, "`failed` = requests with no response (resets, refusals, EOF, timeouts); `resets` and `refused` are parts of it (ab: receive and connect errors, run with `-r` so that a reset is counted instead of aborting the run; wrk: read+write and connect socket errors). `longest stall` is the slowest request (Go client: from dial to last byte; ab: longest request; wrk: latency max). ")
	fmt.Fprintf(&b, "‡ = hard operation: may lose the requests in flight (at most one per connection, i.e. c), never more. Every other operation must lose nothing and stall no request more than %s (phased only; Apache and nginx are reported, not judged).\n\n", o.maxStall)
	writeOpsAndTables(&b, kinds, all)
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// writeOpsAndTables lists each server's operations, then its table.
func writeOpsAndTables(b *strings.Builder, kinds []kind, all []cell) {
	for _, k := range kinds {
		fmt.Fprintf(b, "Operations of %s:\n\n", k.name)
		for _, op := range k.ops {
			fmt.Fprintf(b, "- **%s**: %s\n", op.name, op.desc)
		}
		b.WriteString("\n")
	}
	for _, k := range kinds {
		writeTable(b, k.name, all)
	}
}

func machine() string {
	var parts []string
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				parts = append(parts, strings.TrimSpace(strings.SplitN(line, ":", 2)[1]))
				break
			}
		}
	}
	parts = append(parts, fmt.Sprintf("%d CPUs", runtime.NumCPU()))
	if out, err := exec.Command("uname", "-sr").Output(); err == nil {
		parts = append(parts, strings.TrimSpace(string(out)))
	}
	parts = append(parts, runtime.Version())
	for _, v := range [][]string{{"/usr/sbin/apache2", "-v"}, {"nginx", "-v"}, {"wrk", "-v"}, {"ab", "-V"}} {
		out, _ := exec.Command(v[0], v[1:]...).CombinedOutput()
		if line := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]); line != "" {
			parts = append(parts, line)
		}
	}
	return strings.Join(parts, "; ")
}

func goBuild(out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

func fatal(err error) int {
	fmt.Fprintln(os.Stderr, "reliability:", err)
	return 2
}
