package phases

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/phasedhq/phased/internal/e2e"
)

// traceScript appends "PHASE PASS GENERATION DRY_RUN SLOT" to trace.log, and
// says something on stdout so tests can see hook output in the error log.
const traceScript = `#!/bin/sh
echo "$PHASED_PHASE $PHASED_PASS $PHASED_GENERATION $PHASED_DRY_RUN ${PHASED_SLOT:--}" >> "$(dirname "$0")/trace.log"
test -f "$PHASED_CONFIG" || { echo "no config at $PHASED_CONFIG" >&2; exit 9; }
echo "traced $PHASED_PHASE"
`

func traceHooks(phases ...string) string {
	var b strings.Builder
	b.WriteString("hooks:\n")
	for _, ph := range phases {
		fmt.Fprintf(&b, "  - {name: trace-%s, phase: %s, exec: [./trace.sh]}\n", ph, ph)
	}
	return b.String()
}

var allPhases = []string{"configure", "open-logs", "post-config", "child-init", "child-exit", "shutdown"}

func writeTrace(t *testing.T, dir string) {
	t.Helper()
	e2e.WriteFile(t, dir, "trace.sh", traceScript)
	os.Chmod(filepath.Join(dir, "trace.sh"), 0o755)
}

// waitTrace waits until the trace has n lines.
func waitTrace(t *testing.T, dir string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tr := e2e.ReadTrace(t, dir)
		if len(tr) >= n && tr[0] != "" {
			return tr
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace has %d lines, want %d:\n%s", len(tr), n, strings.Join(tr, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPhaseSequence is Apache's life cycle, traced: the double start, one
// more pass per graceful restart, child-init/child-exit per child, shutdown
// once, and no master-side hook when a child is recycled.
func TestPhaseSequence(t *testing.T) {
	dir := t.TempDir()
	writeTrace(t, dir)
	addr := e2e.FreePort(t)
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(addr, traceHooks(allPhases...)))
	p := e2e.Start(t, dir, nil, "-f", conf)
	p.WaitLog(t, "resuming normal operations", 1, 20*time.Second)
	tr := waitTrace(t, dir, 8)
	e2e.EqualLines(t, "passes at start", tr[:6], []string{
		"configure 1 1 0 -", "open-logs 1 1 0 -", "post-config 1 1 0 -",
		"configure 2 1 0 -", "open-logs 2 1 0 -", "post-config 2 1 0 -",
	})
	e2e.EqualLines(t, "children at start", e2e.Sorted(tr[6:8]), []string{"child-init 2 1 0 0", "child-init 2 1 0 1"})

	// Hook output reaches the error log tagged with the hook's name.
	found := false
	for _, r := range p.Log.Records("traced post-config") {
		if r["hook"] == "trace-post-config" && r["phase"] == "post-config" && r["stream"] == "stdout" {
			found = true
		}
	}
	if !found {
		t.Fatalf("hook output not in the error log:\n%s", p.Log)
	}

	// A recycled child runs child-init (and child-exit) but no master hook.
	// Which slot the first pid holds is the spawn order's business: the
	// recycled one is either; its replacement takes slot 2 (it starts
	// before the old one has left its slot).
	kids := e2e.Workers(p.PID())
	e2e.Kill(t, kids[0], syscall.SIGUSR1)
	tr = waitTrace(t, dir, 10)
	recycled := e2e.Sorted(tr[8:10])
	if recycled[0] != "child-exit 2 1 0 0" && recycled[0] != "child-exit 2 1 0 1" || recycled[1] != "child-init 2 1 0 2" {
		t.Fatalf("recycled child: got %q, want child-exit of slot 0 or 1 and child-init of slot 2", recycled)
	}

	code, out, errOut := e2e.Run(t, dir, nil, "-f", conf, "-k", "graceful")
	if code != 0 {
		t.Fatalf("-k graceful: %d %s %s", code, out, errOut)
	}
	p.WaitLog(t, `"generation finished"`, 1, 10*time.Second)
	tr = waitTrace(t, dir, 17)
	e2e.EqualLines(t, "restart pass", tr[10:13], []string{"configure 3 2 0 -", "open-logs 3 2 0 -", "post-config 3 2 0 -"})
	// Generation 1's children then: slot 2 and whichever of 0 and 1 was
	// not recycled.
	kept := "child-exit 2 1 0 1"
	if recycled[0] == "child-exit 2 1 0 1" {
		kept = "child-exit 2 1 0 0"
	}
	e2e.EqualLines(t, "generation 2 replaces generation 1", e2e.Sorted(tr[13:17]), []string{
		kept, "child-exit 2 1 0 2", "child-init 3 2 0 0", "child-init 3 2 0 1",
	})

	p.Signal(t, syscall.SIGTERM)
	if c := p.WaitExit(t, 10*time.Second); c != 0 {
		t.Fatalf("exit %d", c)
	}
	tr = e2e.ReadTrace(t, dir)
	e2e.EqualLines(t, "stop", e2e.Sorted(tr[17:19]), []string{"child-exit 3 2 0 0", "child-exit 3 2 0 1"})
	e2e.EqualLines(t, "shutdown", tr[19:], []string{"shutdown 3 2 0 -"})
}

func TestConfigTestRunsConfigureOnly(t *testing.T) {
	dir := t.TempDir()
	writeTrace(t, dir)
	conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config("127.0.0.1:8080", traceHooks(allPhases...)))
	code, out, errOut := e2e.Run(t, dir, nil, "-f", conf, "-t")
	if code != 0 || !strings.Contains(out, "Syntax OK") {
		t.Fatalf("-t: %d %q %q", code, out, errOut)
	}
	e2e.EqualLines(t, "trace of -t", e2e.ReadTrace(t, dir), []string{"configure 1 1 1 -"})
}

func TestSingleStart(t *testing.T) {
	dir := t.TempDir()
	writeTrace(t, dir)
	addr := e2e.FreePort(t)
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(addr, "double_start: false\n"+traceHooks("configure", "open-logs", "post-config")))
	p := e2e.Start(t, dir, nil, "-f", conf)
	p.WaitLog(t, "resuming normal operations", 1, 20*time.Second)
	e2e.EqualLines(t, "one pass", e2e.ReadTrace(t, dir), []string{"configure 1 1 0 -", "open-logs 1 1 0 -", "post-config 1 1 0 -"})
}

func TestHangingHookTimesOut(t *testing.T) {
	dir := t.TempDir()
	addr := e2e.FreePort(t)
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	e2e.WriteFile(t, dir, "hang.sh", "#!/bin/sh\necho about to hang >&2\nsleep 60\n")
	os.Chmod(filepath.Join(dir, "hang.sh"), 0o755)
	conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(addr, `hooks:
  - {name: warm-cache, phase: post-config, exec: [./hang.sh], timeout: 500ms}
`))
	start := time.Now()
	code, _, errOut := e2e.Run(t, dir, nil, "-f", conf)
	if code != 1 || !strings.Contains(errOut, `hook "warm-cache" (post-config): timed out after 500ms`) ||
		!strings.Contains(errOut, "about to hang") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
	if _, err := os.Stat(filepath.Join(dir, "run/phased.pid")); !os.IsNotExist(err) {
		t.Fatal("failed start left its pid file")
	}
	if _, _, err := e2e.Get("http://" + addr + "/"); err == nil {
		t.Fatal("failed start left a listener")
	}
}

func TestFailingPostConfigOnRestartKeepsServing(t *testing.T) {
	s := e2e.StartServer(t, "hooks:\n  - {name: migrate, phase: post-config, exec: [./failing.sh]}\n", e2e.FailingScript(t))
	kids := e2e.Workers(s.PID())
	e2e.WriteFile(t, s.Dir, "fail", "")
	code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful")
	if code != 1 || !strings.Contains(errOut, `hook "migrate" (post-config): exit status 4`) ||
		!strings.Contains(errOut, "refusing: post-config") || !strings.Contains(errOut, "old generation keeps serving") {
		t.Fatalf("-k graceful: exit %d %s", code, errOut)
	}
	if now := e2e.Workers(s.PID()); fmt.Sprint(e2e.Sorted(now)) != fmt.Sprint(e2e.Sorted(kids)) {
		t.Fatalf("children changed: %v -> %v", kids, now)
	}
	if code, _, err := e2e.Get(s.URL("/hello.txt")); code != 200 {
		t.Fatalf("not serving: %d %v", code, err)
	}
	os.Remove(filepath.Join(s.Dir, "fail"))
	if code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful"); code != 0 {
		t.Fatalf("restart after the fix: %d %s", code, errOut)
	}
}

func TestFailingChildInitBacksOff(t *testing.T) {
	s := e2e.StartServer(t, "hooks:\n  - {name: open-pool, phase: child-init, exec: [./failing.sh]}\n", e2e.FailingScript(t))
	e2e.WriteFile(t, s.Dir, "fail", "")
	kids := e2e.Workers(s.PID())
	e2e.Kill(t, kids[0], syscall.SIGKILL)
	s.Log.Wait(t, "backing off", 2, 15*time.Second)
	fails := s.Log.Count("child-init failed")
	if fails < 3 || fails > 12 {
		t.Fatalf("%d child-init failures in the back-off window: a storm or no retries\n%s", fails, s.Log)
	}
	if !strings.Contains(s.Log.String(), "exit status 3 (child-init failed)") {
		t.Fatalf("exit status not explained:\n%s", s.Log)
	}
	// The surviving child keeps serving meanwhile.
	if code, _, err := e2e.Get(s.URL("/hello.txt")); code != 200 {
		t.Fatalf("not serving: %d %v", code, err)
	}
	os.Remove(filepath.Join(s.Dir, "fail"))
	deadline := time.Now().Add(20 * time.Second)
	for len(e2e.Workers(s.PID())) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("pool did not recover:\n%s", s.Log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestHookOrderErrorsAndShow(t *testing.T) {
	dir := t.TempDir()
	conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config("127.0.0.1:8080", `hooks:
  - {name: warm-cache, phase: post-config, exec: [/bin/true], after: [migrate]}
  - {name: migrate, phase: post-config, exec: [/bin/true], order: last}
  - {name: check, phase: configure, exec: [/bin/true], order: really-first}
  - {name: fixtures, phase: post-config, exec: [/bin/true], order: first, before: [warm-cache]}
`))
	code, out, errOut := e2e.Run(t, dir, nil, "-f", conf, "-S")
	if code != 0 || !strings.Contains(out, "# post-config: fixtures (first) -> migrate (last) -> warm-cache (middle)") ||
		!strings.Contains(out, "# configure:   check (really-first)") {
		t.Fatalf("-S: %d\n%s\n%s", code, out, errOut)
	}
	conf = e2e.WriteFile(t, dir, "cycle.yaml", e2e.Config("127.0.0.1:8080", `hooks:
  - {name: a, phase: post-config, exec: [/bin/true], before: [b]}
  - {name: b, phase: post-config, exec: [/bin/true], before: [a]}
  - {name: c, phase: configure, exec: [/bin/true], after: [nope]}
`))
	code, _, errOut = e2e.Run(t, dir, nil, "-f", conf, "-t")
	if code != 1 || !strings.Contains(errOut, `hooks "a", "b" form a cycle`) || !strings.Contains(errOut, `no hook named "nope"`) {
		t.Fatalf("-t on a cycle: %d %s", code, errOut)
	}
}

// TestStartupScriptsExample runs examples/startup-scripts from a copy: the
// README's promises about what runs when and how often.
func TestStartupScriptsExample(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join("..", "..", "..", "examples", "startup-scripts")
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"check-config.sh", "migrate.sh", "warm-cache.sh", "child-register.sh"} {
		os.Chmod(filepath.Join(dir, "scripts", f), 0o755)
	}
	addr := e2e.FreePort(t)
	args := []string{"-f", filepath.Join(dir, "phased.yaml"), "-c", "listen=" + addr, "-c", "error_log.format=json"}
	code, out, errOut := e2e.Run(t, dir, nil, append(args, "-S")...)
	if code != 0 || !strings.Contains(out, "# post-config: migrate (first) -> warm-cache (middle)") {
		t.Fatalf("-S: %d\n%s\n%s", code, out, errOut)
	}
	p := e2e.Start(t, dir, nil, args...)
	p.WaitLog(t, "resuming normal operations", 1, 20*time.Second)
	e2e.WaitServing(t, "http://"+addr+"/", 5*time.Second)
	for _, want := range []string{"would apply 001_create_pages.sql (pass 1 is the rehearsal)", "applied 002_add_updated_at.sql",
		"rehearsal pass: cache left for pass 2", "cache warmed: 1 files for generation 1"} {
		if p.Log.Count(want) != 1 {
			t.Errorf("log lacks %q once", want)
		}
	}
	p.Log.Wait(t, "registered", 2, 5*time.Second)
	code, _, errOut = e2e.Run(t, dir, nil, append(args, "-k", "graceful")...)
	if code != 0 {
		t.Fatalf("graceful: %s", errOut)
	}
	p.WaitLog(t, `"generation finished"`, 1, 10*time.Second)
	if p.Log.Count("migrations: 0 pending at pass 3") != 1 {
		t.Errorf("restart re-applied migrations:\n%s", p.Log)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "var", "children"))
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	e2e.EqualLines(t, "registered children", got, []string{"g2-slot0", "g2-slot1"})
	b, _ := os.ReadFile(filepath.Join(dir, "var", "migrations.applied"))
	if string(b) != "001_create_pages.sql\n002_add_updated_at.sql\n" {
		t.Fatalf("ledger: %q", b)
	}
}

// TestStartupScriptsMigratePostgres runs the example's migration against
// the real PostgreSQL (DATABASE_URL, in a schema of its own): the
// rehearsal pass applies nothing, pass 2 applies both migrations once, a
// graceful restart applies nothing again, and a migration that fails on a
// graceful restart leaves no trace in the database and keeps the old
// generation serving.
func TestStartupScriptsMigratePostgres(t *testing.T) {
	db := e2e.PGTest(t)
	e2e.Program(t, "psql", "postgresql-client") // the example's migration runs it
	schema := fmt.Sprintf("phased_example_%d", os.Getpid())
	ctx := context.Background()
	if _, err := db.DB.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.DB.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	u, err := url.Parse(db.DSN)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Skipf("PHASED_TEST_PG_DSN %q is not a postgres:// URL", db.DSN)
	}
	q := u.Query()
	q.Set("options", "-csearch_path="+schema)
	u.RawQuery = q.Encode()

	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("..", "..", "..", "examples", "startup-scripts"))); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"check-config.sh", "migrate.sh", "warm-cache.sh", "child-register.sh"} {
		os.Chmod(filepath.Join(dir, "scripts", f), 0o755)
	}
	env := []string{"DATABASE_URL=" + u.String()}
	addr := e2e.FreePort(t)
	args := []string{"-f", filepath.Join(dir, "phased.yaml"), "-c", "listen=" + addr, "-c", "error_log.format=json"}
	p := e2e.Start(t, dir, env, args...)
	p.WaitLog(t, "resuming normal operations", 1, 20*time.Second)
	applied := func() []string {
		rows, err := db.DB.Query(ctx, "SELECT name FROM "+schema+".schema_migrations ORDER BY name")
		if err != nil {
			t.Fatal(err)
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	e2e.EqualLines(t, "applied at start", applied(), []string{"001_create_pages.sql", "002_add_updated_at.sql"})
	for _, want := range []string{"would apply 001_create_pages.sql (pass 1 is the rehearsal)", "applied 001_create_pages.sql", "applied 002_add_updated_at.sql"} {
		if p.Log.Count(want) != 1 {
			t.Errorf("log lacks %q once:\n%s", want, p.Log)
		}
	}
	var cols int
	db.DB.QueryRow(ctx, "SELECT count(*) FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'pages'", schema).Scan(&cols)
	if cols != 4 {
		t.Fatalf("pages has %d columns, want 4 (both migrations)", cols)
	}

	// A broken migration on a graceful restart: rolled back, the pass
	// fails, the old generation serves on.
	e2e.WriteFile(t, dir, "migrations/003_broken.sql", "CREATE TABLE tags (id serial PRIMARY KEY);\nALTER TABLE nosuch ADD COLUMN x int;\n")
	old := e2e.Sorted(e2e.Workers(p.PID()))
	code, _, errOut := e2e.Run(t, dir, env, append(args, "-k", "graceful")...)
	if code != 1 || !strings.Contains(errOut, `hook "migrate" (post-config)`) || !strings.Contains(errOut, "nosuch") {
		t.Fatalf("graceful with a broken migration: exit %d %s", code, errOut)
	}
	var tags int
	db.DB.QueryRow(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'tags'", schema).Scan(&tags)
	if tags != 0 || len(applied()) != 2 {
		t.Fatalf("the failed migration left a trace: tags table %d, applied %v", tags, applied())
	}
	if now := e2e.Sorted(e2e.Workers(p.PID())); fmt.Sprint(now) != fmt.Sprint(old) {
		t.Fatalf("children %v, want the old generation %v", now, old)
	}
	os.Remove(filepath.Join(dir, "migrations/003_broken.sql"))
	if code, _, errOut := e2e.Run(t, dir, env, append(args, "-k", "graceful")...); code != 0 {
		t.Fatalf("graceful: %s", errOut)
	}
	if p.Log.Count("migrations: 0 pending at pass") != 1 {
		t.Fatalf("the restart re-applied migrations:\n%s", p.Log)
	}
}

// TestRestartWhoseChildrenNeverServeIsAborted: the new configuration passes,
// but its children fail child-init; the old generation keeps serving and
// `-k graceful` says why.
func TestRestartWhoseChildrenNeverServeIsAborted(t *testing.T) {
	s := e2e.StartServer(t, "hooks:\n  - {name: open-pool, phase: child-init, exec: [./failing.sh]}\n", e2e.FailingScript(t))
	old := e2e.Sorted(e2e.Workers(s.PID()))
	e2e.WriteFile(t, s.Dir, "fail", "")
	code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful")
	if code != 1 || !strings.Contains(errOut, "generation 2 did not become ready") ||
		!strings.Contains(errOut, "child-init failed") || !strings.Contains(errOut, "old generation keeps serving") {
		t.Fatalf("-k graceful: exit %d %s", code, errOut)
	}
	os.Remove(filepath.Join(s.Dir, "fail"))
	time.Sleep(1500 * time.Millisecond) // the aborted generation is gone; nothing replaces the old one
	if now := e2e.Sorted(e2e.Workers(s.PID())); fmt.Sprint(now) != fmt.Sprint(old) {
		t.Fatalf("children %v, want the old generation %v", now, old)
	}
	if code, _, err := e2e.Get(s.URL("/hello.txt")); code != 200 {
		t.Fatalf("not serving: %d %v", code, err)
	}
	code, out, _ := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "status", "--json")
	if code != 0 || !strings.Contains(out, `"generation":1`) {
		t.Fatalf("status after the aborted restart: %s", out)
	}
}

// TestHookBeforeTheLogsOpen: the master opens its logs as built-in steps of
// the open-logs phase (phased:listen, then phased:logs), in the order
// `phased -S` shows; a user's hook can run before them, here to create the
// log folder. Without it the log cannot be opened: exit 1 on the terminal,
// naming the file. After the double start the master holds the error log
// once: pass 1's is closed.
func TestHookBeforeTheLogsOpen(t *testing.T) {
	dir := t.TempDir()
	addr := e2e.FreePort(t)
	logs := "error_log: {path: logs/sub/error.log, level: info, format: json}\n"
	conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(addr, logs))
	code, _, errOut := e2e.Run(t, dir, nil, "-f", conf)
	if code != 1 || !strings.Contains(errOut, "logs/sub/error.log") {
		t.Fatalf("start with an unopenable error log: exit %d %q", code, errOut)
	}

	conf = e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(addr, logs+`hooks:
  - {name: mklogdir, phase: open-logs, exec: [mkdir, -p, logs/sub], before: ["phased:logs"]}
`))
	_, out, _ := e2e.Run(t, dir, nil, "-f", conf, "-S")
	if !strings.Contains(out, "# open-logs:   phased:listen (-1000) -> phased:tls (-998) -> mklogdir (middle) -> phased:logs (-999)") {
		t.Fatalf("-S order:\n%s", out)
	}
	if code, out, errOut := e2e.Run(t, dir, nil, "-f", conf, "-t"); code != 0 {
		t.Fatalf("-t: %d %s %s", code, out, errOut)
	}
	p := e2e.Start(t, dir, nil, "-f", conf)
	e2e.WaitServing(t, "http://"+addr+"/", 20*time.Second)
	errlog := filepath.Join(dir, "logs/sub/error.log")
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(errlog)
		if strings.Contains(string(b), "resuming normal operations") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("error log:\n%s\nstderr:\n%s", b, p.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	held := 0
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.PID()))
	for _, fd := range fds {
		if target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", p.PID(), fd.Name())); target == errlog {
			held++
		}
	}
	if held != 1 {
		t.Fatalf("the master holds the error log %d times, want once (pass 1's closed)", held)
	}
}
