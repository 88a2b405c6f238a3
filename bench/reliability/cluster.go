package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/phasedhq/phased/internal/e2e/rolling"
)

// The cluster suite (-cluster): a rolling deploy of three phased instances
// behind a real HAProxy (internal/e2e/rolling) under each client, with and
// without keep-alive. Each cell is a fresh cluster going through every
// step of the deploy, each step under a load run of its own: the load
// starts, the step runs (until the instance is back up in HAProxy), the
// load goes on a moment, then stops. A routine step fails when the client
// lost a request or HAProxy counted a connection or response error, a
// retry, a redispatch, a 5xx or a server abort for it (a retry would hide
// a loss from the client); the kill when the client lost more than
// rolling.KillBound(c): the c requests in flight, and one more each sent
// while the killed processes exit. A cell fails, too, when an access log
// names any client but the load's own address.

var (
	clusterMode  = flag.Bool("cluster", false, "the cluster suite instead: a rolling deploy of three instances behind HAProxy under each client (-clients, -keepalive; -conc default 8); table in bench/cluster/RESULTS.md")
	clusterDrain = flag.Duration("drain-delay", time.Second, "cluster suite: each instance's health.drain_delay")
)

// clusterSource is where the Go client connects from (ab and wrk cannot
// choose: theirs is 127.0.0.1); HAProxy connects from rolling.ProxySource.
const clusterSource = "127.0.0.2"

// clusterRow is one step of one cell.
type clusterRow struct {
	client    string
	keepAlive bool
	conc      int
	step      string
	hard      bool
	Counts
	haproxy string // HAProxy's errors and retries during the step
	note    string
	verdict string
}

// haproxyDelta sums HAProxy's error and retry counters over the instances
// between two samples.
func haproxyDelta(before, after map[string]rolling.ServerStats) (n int, desc string) {
	var ce, re, rt, rd, h5, ab int
	for name, a := range after {
		b := before[name]
		ce += a.ConnErrors - b.ConnErrors
		re += a.RespErrors - b.RespErrors
		rt += a.Retries - b.Retries
		rd += a.Redispatches - b.Redispatches
		h5 += a.HTTP5xx - b.HTTP5xx
		ab += a.ServerAborts - b.ServerAborts
	}
	n = ce + re + rt + rd + h5 + ab
	if n == 0 {
		return 0, "none"
	}
	return n, fmt.Sprintf("econ %d, eresp %d, retries %d, redispatches %d, 5xx %d, srv_abrt %d", ce, re, rt, rd, h5, ab)
}

// runClusterCell runs the whole deploy under one client setting.
func runClusterCell(bin string, cl client, ka bool, conc int, o options, log io.Writer) (rows []clusterRow, logs string, failed int) {
	dir, err := os.MkdirTemp("", "phased-cluster-")
	if err != nil {
		return []clusterRow{{client: cl.name(), keepAlive: ka, conc: conc, step: "start", verdict: "FAIL: " + err.Error()}}, "", 1
	}
	os.Chmod(dir, 0o755)
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}()
	fail := func(step string, err error) ([]clusterRow, string, int) {
		keep = true
		rows = append(rows, clusterRow{client: cl.name(), keepAlive: ka, conc: conc, step: step, verdict: fmt.Sprintf("FAIL: %v (kept %s)", err, dir)})
		return rows, "", failed + 1
	}
	c, err := rolling.Start(rolling.Options{Bin: bin, Dir: dir, DrainDelay: *clusterDrain})
	if err != nil {
		return fail("start", err)
	}
	defer c.Close()
	for _, st := range c.Steps() {
		stop := make(chan struct{})
		res := make(chan Counts, 1)
		go func() {
			res <- cl.run(load{addr: c.Front, path: docPath, conc: conc, keepAlive: ka, limit: o.limit, maxTime: o.maxTime}, stop)
		}()
		time.Sleep(o.before)
		before, err := c.Stats()
		if err != nil {
			close(stop)
			<-res
			return fail(st.Name, err)
		}
		note, stepErr := st.Run()
		time.Sleep(o.after)
		close(stop)
		r := clusterRow{client: cl.name(), keepAlive: ka, conc: conc, step: st.Name, hard: st.Hard, Counts: <-res, note: note}
		after, err := c.Stats()
		if err != nil {
			return fail(st.Name, err)
		}
		var hn int
		hn, r.haproxy = haproxyDelta(before, after)
		var why []string
		switch {
		case stepErr != nil:
			why = append(why, stepErr.Error())
		case r.Requests < 10:
			why = append(why, fmt.Sprintf("only %d requests", r.Requests))
		case st.Hard && r.Lost() > rolling.KillBound(conc):
			why = append(why, fmt.Sprintf("lost %d > %d (in flight, and sent while the processes exit)", r.Lost(), rolling.KillBound(conc)))
		case !st.Hard && r.Lost() > 0:
			why = append(why, fmt.Sprintf("lost %d", r.Lost()))
		case !st.Hard && hn > 0:
			why = append(why, "HAProxy had errors or retries")
		}
		r.verdict = "ok"
		if len(why) > 0 {
			r.verdict = "FAIL: " + strings.Join(why, "; ")
			failed++
			keep = true
		}
		fmt.Fprintf(log, "cluster %-4s ka=%-5v c=%-2d %-60s %s; HAProxy: %s; %s\n", r.client, ka, conc, st.Name, summary(cell{Counts: r.Counts, verdict: r.verdict}), r.haproxy, note)
		rows = append(rows, r)
		if stepErr != nil {
			return rows, "", failed
		}
	}
	c.StopGracefully()
	clients, err := c.AccessLogClients()
	if err != nil {
		return fail("access logs", err)
	}
	want := "127.0.0.1"
	if g, ok := cl.(goClient); ok && g.src != "" {
		want = g.src
	}
	var parts []string
	for _, a := range sortedKeysOf(clients) {
		parts = append(parts, fmt.Sprintf("%s: %d lines", a, clients[a]))
	}
	logs = strings.Join(parts, ", ")
	if clients[want] == 0 || len(clients) != 1 {
		keep = true
		failed++
		rows = append(rows, clusterRow{client: cl.name(), keepAlive: ka, conc: conc, step: "access logs",
			verdict: fmt.Sprintf("FAIL: clients %s, want %s alone (kept %s)", logs, want, dir)})
	}
	return rows, logs, failed
}

func sortedKeysOf(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// runCluster runs the cluster suite and writes its table to results.
func runCluster(bin string, cls []client, kas []bool, concs []int, o options, results, cmdline string) int {
	started := time.Now()
	var all []clusterRow
	var logs []string
	failed := 0
	for _, cl := range cls {
		if _, ok := cl.(goClient); ok {
			cl = goClient{src: clusterSource}
		}
		for _, ka := range kas {
			for _, conc := range concs {
				rows, l, f := runClusterCell(bin, cl, ka, conc, o, os.Stderr)
				all = append(all, rows...)
				failed += f
				if l != "" {
					logs = append(logs, fmt.Sprintf("- %s, keep-alive %s, c=%d: %s", cl.name(), onOff(ka), conc, l))
				}
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Rolling deploy behind HAProxy: results\n\n")
	fmt.Fprintf(&b, "Run %s UTC, %d rows in %s, %d failed.\n\n", time.Now().UTC().Format("2006-01-02 15:04"), len(all), time.Since(started).Round(time.Second), failed)
	fmt.Fprintf(&b, "Command: `%s` (from the module root, after `make build`; part of `make soak`)\n\n", cmdline)
	fmt.Fprintf(&b, "Machine: %s; %s\n\n", machine(), haproxyVersion())
	b.WriteString("Three phased instances (worker, then event, MPM; 2 children each), each with `proxy_protocol: true` on its listener, `sigterm: graceful-stop`, " +
		fmt.Sprintf("`health.drain_delay: %s` and `trusted_proxies: [%s/32]`, behind Debian's HAProxy (`balance roundrobin`, `option httpchk GET /readyz`, `inter 200ms fall 2 rise 2`, `send-proxy-v2 check-send-proxy source %s`, `retries 3`, `option redispatch`), all on loopback. ", *clusterDrain, rolling.ProxySource, rolling.ProxySource) +
		"Each step runs under a load run of its own through HAProxy's frontend (a 6-byte file): the load starts, " +
		fmt.Sprintf("%s later the step runs until the instance is back up in HAProxy, the load goes on %s, then stops. ", o.before, o.after) +
		"The steps: each instance in turn gets SIGTERM (a graceful stop: readiness 503 at once, HAProxy marks it down, the listeners close after the drain delay, requests in flight finish) and is started again on a new configuration (the MPM switched); one is upgraded in place with `phased -k upgrade` (HAProxy must see it up all along: the new master serves the same sockets); one is killed with SIGKILL to its master and children at once and started again. " +
		"A routine step fails if the client lost a request or HAProxy counted an error, retry, redispatch, 5xx or server abort for it (`HAProxy` column), so no retry hides a loss. " +
		"‡ = hard step: may lose the requests in flight and one more per connection sent while the killed processes exit, at most 2c. `longest stall` is the slowest request through HAProxy (reported, not judged). " +
		fmt.Sprintf("The Go client connects from %s, ab and wrk from 127.0.0.1, HAProxy from %s; the access logs must name the load's address alone.\n\n", clusterSource, rolling.ProxySource))
	b.WriteString("`lost` is what the client lost, each request once (ab counts an error page both as a length failure and as non-2xx).\n\n")
	b.WriteString("| step | client | keep-alive | c | requests | failed | non-2xx | resets | lost | longest stall | HAProxy | verdict |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, r := range all {
		name := r.step
		if r.hard {
			name += " ‡"
		}
		v := r.verdict
		if r.note != "" {
			v += "; " + r.note
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %d | %d | %d | %s | %s | %s |\n", name, r.client, onOff(r.keepAlive), r.conc,
			r.Requests, r.Failed, r.Non2xx, r.Resets, r.Lost(), fmtDur(r.MaxStall), r.haproxy, strings.ReplaceAll(v, "|", "/"))
	}
	b.WriteString("\nClient addresses in the instances' access logs (the killed instance's last buffered lines are lost with it):\n\n")
	b.WriteString(strings.Join(logs, "\n") + "\n")
	fmt.Print(b.String())
	if results != "" {
		if err := os.WriteFile(results, []byte(b.String()), 0o644); err != nil {
			return fatal(err)
		}
		fmt.Println("wrote", results)
	}
	if failed > 0 {
		return 1
	}
	return 0
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func haproxyVersion() string {
	out, _ := exec.Command("haproxy", "-v").CombinedOutput()
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}
