package apps

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// pg is the test database (see e2e.PG), with what the app tests ask of it.
type pg struct{ *e2e.PG }

// pgTest connects to the test database, or skips t (see e2e.PGTest).
func pgTest(t *testing.T) *pg { return &pg{e2e.PGTest(t)} }

// app returns a DSN for one app under test with an application_name of its
// own (see e2e.PG.AppDSN).
func (p *pg) app(t *testing.T) (dsn, name string) { return p.AppDSN(t) }

// conns counts the database's connections whose application_name is name.
func (p *pg) conns(t *testing.T, name string) int {
	t.Helper()
	var n int
	if err := p.DB.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", name).Scan(&n); err != nil {
		t.Fatalf("pg_stat_activity: %v", err)
	}
	return n
}

// appChildren returns the pids of pid's children that are not plugins.
func appChildren(pid int) []int {
	var out []int
	for _, c := range e2e.Children(pid) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c))
		if !strings.Contains(string(b), "--internal-plugin") {
			out = append(out, c)
		}
	}
	return out
}

// pools returns, for each app child of master, how many connections to the
// database it holds.
func (p *pg) pools(t *testing.T, master int) map[int]int {
	t.Helper()
	conns, err := tcpTo(p.Port)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int{}
	for _, k := range appChildren(master) {
		out[k] = len(heldBy(k, conns))
	}
	return out
}

// checkServing checks that the database sees size connections for each
// app child of s, and that each child holds size of them itself: one
// pool per child.
func (p *pg) checkServing(t *testing.T, s *e2e.Server, name string, children, size int) {
	t.Helper()
	pools := p.pools(t, s.PID())
	n := p.conns(t, name)
	if len(pools) != children || n != children*size {
		t.Fatalf("%d app children and %d connections in pg_stat_activity, want %d x %d; log:\n%s", len(pools), n, children, size, s.Log)
	}
	for pid, held := range pools {
		if held != size {
			t.Fatalf("child %d holds %d connections to the database, want its pool of %d (pools %v)", pid, held, size, pools)
		}
	}
}

// waitServing waits until checkServing holds: children app children with a
// pool of size each, and nothing else (a retired child's pool closed, its
// replacement's open).
func (p *pg) waitServing(t *testing.T, s *e2e.Server, name string, children, size int, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(50 * time.Millisecond) {
		pools := p.pools(t, s.PID())
		settled := len(pools) == children && p.conns(t, name) == children*size
		for _, held := range pools {
			settled = settled && held == size
		}
		if settled || time.Now().After(deadline) {
			p.checkServing(t, s, name, children, size)
			return
		}
	}
}

// waitConns waits until the database sees want connections named name.
func (p *pg) waitConns(t *testing.T, s *e2e.Server, name string, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n := p.conns(t, name)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d app connections in pg_stat_activity, want %d; log:\n%s", n, want, s.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// loadUntil runs clients until stop is closed, in the background.
func loadUntil(addr string, clients int, keepAlive bool) (stop chan struct{}, result <-chan e2e.LoadResult) {
	stop = make(chan struct{})
	res := make(chan e2e.LoadResult, 1)
	go func() { res <- e2e.Load(addr, "/", clients, keepAlive, math.MaxInt, stop) }()
	return stop, res
}

func appConfig(bin, dsn string, maxConns int) string {
	return fmt.Sprintf(`mpm:
  name: worker
  start_servers: 2
  threads_per_child: 25
  min_spare_threads: 25
  max_spare_threads: 50
  max_connections_per_child: %d
app:
  command: [%s]
  env: {PGPOOL_SIZE: "2", DATABASE_URL: %q}
`, maxConns, bin, dsn)
}

// startWatched starts a master on mpm (see mpmConfig) with a watch on its
// sockets from its first instant, through both configuration passes, and
// waits until it serves.
func startWatched(t *testing.T, mpm string, port int) (*e2e.Server, *masterWatch) {
	t.Helper()
	dir := t.TempDir()
	addr := e2e.FreePort(t)
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.MPMConfig(addr, mpm))
	s := &e2e.Server{Proc: e2e.Start(t, dir, nil, "-f", conf), Addr: addr, Conf: conf}
	w := watchMaster(t, s.PID(), port)
	s.WaitLog(t, "resuming normal operations", 1, 20*time.Second)
	return s, w
}

// TestAppPoolPerChild runs examples/app-pgpool against a real PostgreSQL
// (each child connects after the fork, never the master): while it serves, the database sees children x pool size
// connections, each child holding its own pool; a graceful restart under
// load closes the old generation's pools and loses nothing; the master
// holds no connection at any time.
func TestAppPoolPerChild(t *testing.T) {
	p := pgTest(t)
	dsn, name := p.app(t)
	bin := e2e.Build(t, "./examples/app-pgpool")
	s, watch := startWatched(t, appConfig(bin, dsn, 0), p.Port)
	p.waitServing(t, s, name, 2, 2, 10*time.Second)
	// The watch is no blind eye: set on a child, it sees the child's pool.
	ctl := watchMaster(t, appChildren(s.PID())[0], p.Port)
	time.Sleep(100 * time.Millisecond)
	if ctl.end(); len(ctl.held) == 0 || ctl.err != nil {
		t.Fatalf("a watch on a child did not see its pool: %v", ctl.err)
	}
	code, body, err := e2e.Get(s.URL("/"))
	if code != 200 || !strings.Contains(body, "database time") {
		t.Fatalf("GET / = %d %q %v", code, body, err)
	}

	// (a) Under load, every sample sees two pools of two, and every one of
	// the four connections runs queries during the load.
	var since time.Time
	if err := p.DB.QueryRow(context.Background(), "SELECT now()").Scan(&since); err != nil {
		t.Fatal(err)
	}
	stop, result := loadUntil(s.Addr, 8, false)
	for range 20 {
		time.Sleep(100 * time.Millisecond)
		p.checkServing(t, s, name, 2, 2)
	}
	var used int
	if err := p.DB.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state_change > $2", name, since).Scan(&used); err != nil {
		t.Fatal(err)
	}
	if used != 4 {
		t.Fatalf("%d of the 4 connections ran a query during the load", used)
	}

	// (b) A graceful restart under the same load: the old generation's
	// pools close (each child says so), the new one opens two pools of two.
	old := appChildren(s.PID())
	if code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful"); code != 0 {
		t.Fatalf("-k graceful: %d %s", code, errOut)
	}
	e2e.WaitGone(t, old, 15*time.Second)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	res := <-result
	t.Logf("load: %s", res)
	if res.Errors != 0 || res.Non2xx != 0 || res.Requests < 100 {
		t.Fatalf("load over a graceful restart: %s; log:\n%s", res, s.Log)
	}
	p.waitServing(t, s, name, 2, 2, 10*time.Second)
	for _, k := range appChildren(s.PID()) {
		if slices.Contains(old, k) {
			t.Fatalf("child %d of the old generation still serves", k)
		}
	}
	if n := s.Log.Count("database pool closed"); n < len(old) {
		t.Fatalf("%d pools closed by child-exit, want the old generation's %d; log:\n%s", n, len(old), s.Log)
	}
	watch.check(t)
}

// TestAppPoolRecycles: at max_connections_per_child 5, continuous load
// drives at least 200 recycles; no request fails, every retired child
// closes its pool and exits cleanly, the count of connections comes back to
// children x pool size, and the master holds no connection meanwhile.
//
// A recycle is counted from the children's side: the app logs "database
// pool closed" in its child-exit hook, which runs only in a child that
// retired after serving.
func TestAppPoolRecycles(t *testing.T) {
	const want = 200
	p := pgTest(t)
	dsn, name := p.app(t)
	bin := e2e.Build(t, "./examples/app-pgpool")
	s, watch := startWatched(t, appConfig(bin, dsn, 5), p.Port)
	p.waitConns(t, s, name, 4, 10*time.Second)

	began := time.Now()
	stop, result := loadUntil(s.Addr, 4, false)
	peak := 0
	for s.Log.Count("database pool closed") < want {
		if time.Since(began) > 45*time.Second || s.Exited() {
			close(stop)
			t.Fatalf("%d retired children closed their pools in %s, want %d recycles; load %s; log:\n%s",
				s.Log.Count("database pool closed"), time.Since(began).Round(time.Millisecond), want, <-result, s.Log)
		}
		peak = max(peak, p.conns(t, name))
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	res := <-result
	took := time.Since(began)
	if res.Errors != 0 || res.Non2xx != 0 || res.Requests < want*5 {
		t.Fatalf("load over %d recycles: %s; log:\n%s", want, res, s.Log)
	}

	p.waitServing(t, s, name, 2, 2, 10*time.Second)
	recycles := s.Log.Count("database pool closed")
	exited := 0
	for _, r := range s.Log.Records("child exited") {
		if r["status"] == "exit status 0" {
			exited++
		}
	}
	if exited < want || s.Log.Count("child exited unexpectedly") != 0 || s.Log.Count("child-init failed") != 0 {
		t.Fatalf("%d children exited cleanly after %d recycles; log:\n%s", exited, recycles, s.Log)
	}
	watch.check(t)
	t.Logf("%d recycles (%d clean exits) in %s under load: %s; at most %d connections at once",
		recycles, exited, took.Round(time.Millisecond), res, peak)
}

// TestAppPgpoolReadmeConfig runs phased on the config that
// examples/app-pgpool/README.md shows, with only its listen address and
// database URL changed: it passes -t, serves from the database with two
// pools of two, logs the requests, and a stop closes every pool.
func TestAppPgpoolReadmeConfig(t *testing.T) {
	p := pgTest(t)
	dsn, name := p.app(t)
	md, err := os.ReadFile("../../../examples/app-pgpool/README.md")
	if err != nil {
		t.Fatal(err)
	}
	var conf string
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(md), -1) {
		if strings.Contains(m[1], "command:") {
			conf = m[1]
			break
		}
	}
	addr := e2e.FreePort(t)
	for _, r := range [][2]string{{"127.0.0.1:8080", addr}, {"postgres://postgres@127.0.0.1:5432/test", dsn}} {
		if strings.Count(conf, r[0]) != 1 {
			t.Fatalf("the README's config should name %s once:\n%s", r[0], conf)
		}
		conf = strings.Replace(conf, r[0], r[1], 1)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	if err := os.Symlink(e2e.Build(t, "./examples/app-pgpool"), filepath.Join(dir, "bin/app-pgpool")); err != nil {
		t.Fatal(err)
	}
	path := e2e.WriteFile(t, dir, "phased.yaml", conf)
	if code, out, errOut := e2e.Run(t, dir, nil, "-f", path, "-t"); code != 0 {
		t.Fatalf("phased -t on the README's config: %d %s %s", code, out, errOut)
	}
	s := &e2e.Server{Proc: e2e.Start(t, dir, nil, "-f", path), Addr: addr, Conf: path}
	s.WaitLog(t, "resuming normal operations", 1, 20*time.Second)
	code, body, err := e2e.Get(s.URL("/"))
	if code != 200 || !strings.Contains(body, "database time") {
		t.Fatalf("GET / = %d %q %v", code, body, err)
	}
	p.waitServing(t, s, name, 2, 2, 10*time.Second)
	s.Signal(t, syscall.SIGTERM)
	if code := s.WaitExit(t, 15*time.Second); code != 0 {
		t.Fatalf("stop: exit %d; log:\n%s", code, s.Log)
	}
	p.waitConns(t, s, name, 0, 10*time.Second)
	b, err := os.ReadFile(filepath.Join(dir, "logs/access.log"))
	if err != nil || !combinedRe.MatchString(strings.Split(string(b), "\n")[0]) || !strings.Contains(string(b), `"GET / HTTP/1.1" 200`) {
		t.Fatalf("access log: %v\n%s", err, b)
	}
}

// TestBinaryDoesNotLinkPgx: the phased binary the end-to-end tests run
// contains no PostgreSQL driver, so the master cannot hold a database
// connection of its own (cmd/phased's TestMasterDoesNotLinkPgx checks the
// command's dependencies).
func TestBinaryDoesNotLinkPgx(t *testing.T) {
	out, err := exec.Command("go", "version", "-m", e2e.Binary(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "github.com/hashicorp/go-plugin") {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "github.com/jackc/") || strings.Contains(string(out), "github.com/lib/pq") {
		t.Errorf("the phased binary links a PostgreSQL driver:\n%s", out)
	}
}

// TestAppDatabaseDown: with the database unreachable, child-init fails with
// the cause in the log and the master backs off instead of hammering; as
// the first generation never becomes ready, the master then gives up with a
// clear message and a non-zero exit.
func TestAppDatabaseDown(t *testing.T) {
	bin := e2e.Build(t, "./examples/app-pgpool")
	closed := e2e.FreePort(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	e2e.WriteFile(t, dir, "public/hello.txt", "hello\n")
	conf := e2e.WriteFile(t, dir, "phased.yaml",
		e2e.MPMConfig(e2e.FreePort(t), appConfig(bin, "postgres://postgres@"+closed+"/test?connect_timeout=2", 5)))
	p := e2e.Start(t, dir, nil, "-f", conf)
	if code := p.WaitExit(t, 30*time.Second); code == 0 {
		t.Fatalf("master exited 0 with no database; log:\n%s", p.Log)
	}
	log := p.Log.String()
	for _, want := range []string{
		"child-init failed; this child exits", "connection refused", closed,
		"exit status 3 (child-init failed)", "backing off", "did not become ready",
	} {
		if !strings.Contains(log, want) {
			t.Fatalf("log without %q:\n%s", want, log)
		}
	}
	// Back-off: 250 ms, 500 ms, 1 s ... between attempts, not a spin.
	n := p.Log.Count(`"status":"exit status 3 (child-init failed)"`)
	if n > 15 {
		t.Fatalf("%d failed children: the master is hammering the database; log:\n%s", n, log)
	}
	t.Logf("%d failed children, then the master gave up", n)
}

// pgProxy forwards loopback connections to the database until closed, so a
// test can take the database away from the children.
type pgProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newPGProxy(t *testing.T, upstream string) *pgProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{ln: ln}
	t.Cleanup(p.close)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.DialTimeout("tcp", upstream, 3*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *pgProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestAppDatabaseLostWhileServing: the database goes away under a serving
// generation; recycled children fail child-init and the master backs off
// instead of hammering, and keeps running.
func TestAppDatabaseLostWhileServing(t *testing.T) {
	dsn := pgTest(t).DSN
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Skipf("PHASED_TEST_PG_DSN %q is not a postgres:// URL", dsn)
	}
	proxy := newPGProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	bin := e2e.Build(t, "./examples/app-pgpool")
	s := e2e.StartMPM(t, appConfig(bin, u.String(), 5))
	if code, body, err := e2e.Get(s.URL("/")); code != 200 {
		t.Fatalf("GET / = %d %q %v", code, body, err)
	}
	proxy.close()
	// Each connection counts towards max_connections_per_child (5): the
	// children retire and their replacements find no database.
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(15 * time.Second)
	for s.Log.Count("backing off") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no back-off after the database went away; log:\n%s", s.Log)
		}
		if resp, err := c.Get(s.URL("/")); err == nil {
			resp.Body.Close()
		}
	}
	before := s.Log.Count(`"status":"exit status 3 (child-init failed)"`)
	time.Sleep(2 * time.Second)
	after := s.Log.Count(`"status":"exit status 3 (child-init failed)"`)
	if !strings.Contains(s.Log.String(), "child-init failed; this child exits") || after < 2 {
		t.Fatalf("no clear child-init failure in the log:\n%s", s.Log)
	}
	if after-before > 8 {
		t.Fatalf("%d failed children in 2 s after backing off: the master is hammering the database", after-before)
	}
	if s.Exited() {
		t.Fatalf("the master exited; log:\n%s", s.Log)
	}
	t.Logf("%d failed children in all, %d in the 2 s after the first back-off", after, after-before)
}
