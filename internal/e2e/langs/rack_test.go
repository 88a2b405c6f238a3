package langs

import (
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// needRack skips t loudly unless Debian's rack and server are installed.
func needRack(t *testing.T, server string) {
	t.Helper()
	e2e.Binary(t)
	e2e.Program(t, "/usr/bin/ruby:rack", "ruby-rack")
	e2e.Program(t, server, server)
}

// TestRackPuma runs examples/app-rack's phased.yaml (puma, {threads}
// threads, under the worker MPM): GET, a POST body, a streamed response; a
// graceful restart under load loses no request; a request in flight while
// its child retires completes; and puma's stop signal, TERM, lets it finish
// a request it still runs when its child is stopped.
func TestRackPuma(t *testing.T) {
	t.Parallel()
	needRack(t, "puma")
	x := startExample(t, "app-rack", "phased.yaml", nil)
	x.operate(t, "rack", "puma", nil)
}

// TestRackUnicorn runs examples/app-rack's phased-unicorn.yaml (unicorn,
// one worker, under prefork) through the same: requests, a graceful
// restart under load, a request in flight through a retirement, and
// unicorn's graceful stop signal, QUIT (its TERM cuts requests).
func TestRackUnicorn(t *testing.T) {
	t.Parallel()
	needRack(t, "unicorn")
	x := startExample(t, "app-rack", "phased-unicorn.yaml", nil)
	x.operate(t, "rack", "unicorn", nil)
}

// TestRackPools runs both of examples/app-rack's files with DATABASE_URL
// set (ruby-pg), against the real PostgreSQL: each app process opens its
// pool where the app loads, puma itself with one connection per thread,
// unicorn's worker (after the fork) with one; the database sees exactly
// that per ready child, each connection held by an app process of a live
// child, before and after a graceful restart.
func TestRackPools(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		server, conf string
		size         int
		inWorker     bool
	}{
		{"puma", "phased.yaml", 4, false},
		{"unicorn", "phased-unicorn.yaml", 1, true},
	} {
		t.Run(c.server, func(t *testing.T) {
			t.Parallel()
			needRack(t, c.server)
			e2e.Program(t, "/usr/bin/ruby:pg", "ruby-pg")
			pg := e2e.PGTest(t)
			dsn, name := pg.AppDSN(t)
			x := startExample(t, "app-rack", c.conf, []string{"DATABASE_URL=" + dsn})
			var db struct {
				Backend int `json:"backend"`
				Pool    int `json:"pool"`
			}
			x.getJSON(t, "/db", &db)
			if db.Pool != c.size || db.Backend == 0 {
				t.Errorf("GET /db = %+v; want a backend of a pool of %d", db, c.size)
			}
			before := waitPools(t, pg, x, name, 0, c.size, c.inWorker)
			old := e2e.Workers(x.PID())
			if code, out, errOut := e2e.Run(t, x.Dir, nil, "-f", x.Conf, "-k", "graceful"); code != 0 {
				t.Fatalf("-k graceful: %d %s %s", code, out, errOut)
			}
			e2e.WaitGone(t, old, 30*time.Second)
			after := waitPools(t, pg, x, name, 0, c.size, c.inWorker)
			t.Logf("%s: apps %v -> %v, pools of %d", c.server, keys(before.byApp), keys(after.byApp), c.size)
		})
	}
}
