package langs

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// needPython skips t loudly unless Debian's gunicorn and psycopg2 (for the
// Python gunicorn runs) are installed.
func needPython(t *testing.T) {
	t.Helper()
	e2e.Binary(t)
	e2e.Program(t, "gunicorn", "gunicorn")
	e2e.Program(t, "/usr/bin/python3:psycopg2", "python3-psycopg2")
}

// TestPythonExample runs examples/app-python's phased.yaml (gunicorn's
// gthread worker, four threads, under the worker MPM): GET, a POST body, a
// streamed response; a graceful restart under load loses no request; a
// request in flight while its child retires completes; and gunicorn's stop
// signal, TERM, lets it finish a request of 7 s it still runs when its
// child is stopped (the master waits for that, up to app.stop_timeout).
func TestPythonExample(t *testing.T) {
	t.Parallel()
	needPython(t)
	pg := e2e.PGTest(t)
	dsn, name := pg.AppDSN(t)
	x := startExample(t, "app-python", "phased.yaml", []string{"DATABASE_URL=" + dsn})
	var db struct {
		Backend int `json:"backend"`
		Pool    int `json:"pool"`
	}
	x.getJSON(t, "/db", &db)
	if db.Pool != 4 || db.Backend == 0 {
		t.Errorf("GET /db = %+v; want a backend of a pool of 4 ({threads})", db)
	}
	waitPools(t, pg, x, name, 2, 4, true)
	// worker_cpu_affinity: auto, two children: each child and its gunicorn
	// on their slot's share of the CPUs.
	for _, c := range x.children(t) {
		if c.State == "ready" {
			e2e.OnlyOn(t, fmt.Sprintf("child %d in slot %d and its gunicorn", c.PID, c.Slot),
				append([]int{c.PID, c.AppPID}, e2e.Descendants(c.AppPID)...), e2e.AutoCPUs(t, c.Slot, 2))
		}
	}
	// Longer than the master's own 5 s between telling a child to stop and
	// killing it: gunicorn has the app's stop_timeout (30 s) to finish.
	x.stopRequest = 7 * time.Second
	// After the load the MPM may run a third child: any number, each with
	// its pool of 4.
	x.operate(t, "python", "gunicorn", func() { waitPools(t, pg, x, name, 0, 4, true) })
}

// TestPythonPoolPerProcess runs examples/app-python's phased.yaml against
// the real PostgreSQL, with max_connections_per_child 40 and
// max_memory_per_child 150M (-c): each gunicorn worker opens its pool of
// {threads} (4) connections after the fork, so the database sees exactly
// children x 4, each held by an app process of a live child, never the
// master, a child or a gunicorn master; and it is back to exactly that
// after every way a child is replaced: SIGUSR1 to one child,
// max_connections_per_child, max_memory_per_child (counting the app's
// memory), -k graceful and SIGHUP.
func TestPythonPoolPerProcess(t *testing.T) {
	t.Parallel()
	needPython(t)
	pg := e2e.PGTest(t)
	dsn, name := pg.AppDSN(t)
	x := startExample(t, "app-python", "phased.yaml", []string{"DATABASE_URL=" + dsn},
		"-c", "mpm.max_connections_per_child=40", "-c", "mpm.max_memory_per_child=150M")
	pools := waitPools(t, pg, x, name, 2, 4, true)
	replaced := func(how string, before poolCheck) poolCheck {
		t.Helper()
		after := waitPools(t, pg, x, name, 2, 4, true)
		same := 0
		for app := range before.byApp {
			if _, ok := after.byApp[app]; ok {
				same++
			}
		}
		if same == len(before.byApp) {
			t.Fatalf("%s: the same apps %v still serve", how, after.byApp)
		}
		t.Logf("%s: apps %v -> %v, %d connections", how, keys(before.byApp), keys(after.byApp), after.conns)
		return after
	}

	// SIGUSR1 to one child: it retires, its replacement opens a pool.
	kids := e2e.Workers(x.PID())
	x.signalChild(t, kids[0], syscall.SIGUSR1)
	e2e.WaitGone(t, kids[:1], 20*time.Second)
	pools = replaced("SIGUSR1 to one child", pools)

	// max_connections_per_child: 90 connections over two children.
	retired := x.Log.Count("child reached max_connections_per_child")
	for i := range 90 {
		if code, body, err := e2e.Get(x.URL("/")); code != 200 {
			t.Fatalf("GET / #%d: %d %q %v", i, code, body, err)
		}
	}
	x.Log.Wait(t, "child reached max_connections_per_child", retired+1, 10*time.Second)
	pools = replaced("max_connections_per_child", pools)

	// max_memory_per_child: one worker keeps 200 MiB; its child retires.
	var fat struct {
		PID int `json:"pid"`
	}
	x.getJSON(t, "/alloc?mb=200", &fat)
	x.Log.Wait(t, "child exceeds max_memory_per_child", 1, 15*time.Second)
	e2e.WaitGone(t, []int{fat.PID}, 20*time.Second)
	pools = replaced("max_memory_per_child", pools)

	// -k graceful and SIGHUP: a new generation, new pools, the old closed.
	for _, how := range []string{"-k graceful", "SIGHUP"} {
		old := e2e.Workers(x.PID())
		if how == "SIGHUP" {
			x.Signal(t, syscall.SIGHUP)
		} else if code, out, errOut := e2e.Run(t, x.Dir, nil, "-f", x.Conf, "-k", "graceful"); code != 0 {
			t.Fatalf("-k graceful: %d %s %s", code, out, errOut)
		}
		e2e.WaitGone(t, old, 30*time.Second)
		pools = replaced(how, pools)
	}
	if n := x.Log.Count("child exited unexpectedly"); n != 0 {
		t.Fatalf("%d children exited unexpectedly; log:\n%s", n, x.Log)
	}
}

// keys returns m's keys, sorted.
func keys(m map[int]int) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestPythonPrefork runs examples/app-python's phased-prefork.yaml: under
// prefork each child's gunicorn has one sync worker with a pool of one
// connection; concurrent requests never overlap in one app; the database
// sees one connection per ready child, before and after a graceful restart
// under load; a request in flight while its child retires completes; and
// TERM stops gunicorn's sync worker gracefully too.
func TestPythonPrefork(t *testing.T) {
	t.Parallel()
	needPython(t)
	pg := e2e.PGTest(t)
	dsn, name := pg.AppDSN(t)
	x := startExample(t, "app-python", "phased-prefork.yaml", []string{"DATABASE_URL=" + dsn})
	waitPools(t, pg, x, name, 0, 1, true)

	// Six requests at once, each 300 ms in its app: none overlaps another
	// in the same app.
	var mu sync.Mutex
	byPID := map[int][][2]float64{}
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var a struct {
				PID   int     `json:"pid"`
				Start float64 `json:"start"`
				End   float64 `json:"end"`
			}
			x.getJSON(t, "/slow?ms=300", &a)
			mu.Lock()
			byPID[a.PID] = append(byPID[a.PID], [2]float64{a.Start, a.End})
			mu.Unlock()
		}()
	}
	wg.Wait()
	for pid, spans := range byPID {
		slices.SortFunc(spans, func(a, b [2]float64) int { return cmp.Compare(a[0], b[0]) })
		for i := 1; i < len(spans); i++ {
			if spans[i][0] < spans[i-1][1] {
				t.Fatalf("app %d served two requests at once under prefork: %v", pid, spans)
			}
		}
	}
	t.Logf("%d apps served 6 requests of 300 ms at once", len(byPID))
	waitPools(t, pg, x, name, 0, 1, true)
	x.operate(t, "python", "gunicorn", func() { waitPools(t, pg, x, name, 0, 1, true) })
}
