package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
	"github.com/phasedhq/phased/internal/e2e/rolling"
)

// loadSource is where the test's clients connect from: neither HAProxy's
// source (rolling.ProxySource) nor the usual 127.0.0.1, so the instances'
// access logs show whose address they took for the client's.
const loadSource = "127.0.0.2"

// TestRollingDeploy is the short form of the rolling-deploy proof (the long
// one is go run ./bench/reliability -cluster, in make soak): three
// instances behind a real HAProxy that checks their readiness and speaks
// PROXY v2 to them, under continuous load with and without keep-alive;
// each instance stopped gracefully and started on a new configuration,
// one upgraded in place, one killed. Every routine step loses nothing and
// HAProxy needed no retry for it; the kill loses at most what
// rolling.KillBound allows; the access logs name the load's address,
// never HAProxy's.
func TestRollingDeploy(t *testing.T) {
	haproxy := e2e.Program(t, "haproxy", "haproxy")
	c, err := rolling.Start(rolling.Options{Bin: e2e.Binary(t), Dir: t.TempDir(), HAProxy: haproxy, Env: e2e.Environ(t), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const conc = 4 // per load run; two runs
	for _, step := range c.Steps() {
		stop := make(chan struct{})
		ka, close := make(chan e2e.LoadResult, 1), make(chan e2e.LoadResult, 1)
		go func() { ka <- e2e.LoadFrom(loadSource, c.Front, "/hello.txt", conc, true, 1<<30, stop) }()
		go func() { close <- e2e.LoadFrom(loadSource, c.Front, "/hello.txt", conc, false, 1<<30, stop) }()
		time.Sleep(500 * time.Millisecond)
		before, err := c.Stats()
		if err != nil {
			t.Fatal(err)
		}
		note, err := step.Run()
		time.Sleep(500 * time.Millisecond)
		shut(stop)
		rk, rc := <-ka, <-close
		after, serr := c.Stats()
		if err != nil {
			t.Fatalf("%s: %v", step.Name, err)
		}
		if serr != nil {
			t.Fatal(serr)
		}
		d := delta(before, after)
		t.Logf("%s: %s; keep-alive: %v; close: %v; HAProxy: %s", step.Name, note, rk, rc, d)
		if rk.Requests == 0 || rc.Requests == 0 {
			t.Fatalf("%s: a load served nothing", step.Name)
		}
		lost := rk.Errors + rk.Non2xx + rc.Errors + rc.Non2xx
		switch {
		case !step.Hard && (lost > 0 || d.errors() > 0):
			t.Errorf("%s lost %d requests (HAProxy: %s)", step.Name, lost, d)
		case step.Hard && lost > rolling.KillBound(2*conc):
			t.Errorf("%s lost %d requests, more than the %d that can be in flight and sent while the processes exit", step.Name, lost, rolling.KillBound(2*conc))
		}
	}
	c.StopGracefully()
	clients, err := c.AccessLogClients()
	if err != nil {
		t.Fatal(err)
	}
	if clients[rolling.ProxySource] > 0 || clients[loadSource] == 0 || len(clients) != 1 {
		t.Errorf("access logs by client address: %v, want %s's alone", clients, loadSource)
	}
}

func shut(ch chan struct{}) { close(ch) }

// statDelta is what HAProxy counted during a step, over all instances.
type statDelta struct{ connErrors, respErrors, retries, redispatches, http5xx, aborts int }

func (d statDelta) errors() int {
	return d.connErrors + d.respErrors + d.retries + d.redispatches + d.http5xx + d.aborts
}

func (d statDelta) String() string {
	return fmt.Sprintf("%d connection errors, %d response errors, %d retries, %d redispatches, %d 5xx, %d server aborts",
		d.connErrors, d.respErrors, d.retries, d.redispatches, d.http5xx, d.aborts)
}

func delta(before, after map[string]rolling.ServerStats) statDelta {
	var d statDelta
	for name, a := range after {
		b := before[name]
		d.connErrors += a.ConnErrors - b.ConnErrors
		d.respErrors += a.RespErrors - b.RespErrors
		d.retries += a.Retries - b.Retries
		d.redispatches += a.Redispatches - b.Redispatches
		d.http5xx += a.HTTP5xx - b.HTTP5xx
		d.aborts += a.ServerAborts - b.ServerAborts
	}
	return d
}
