package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PG is the test database: a connection for the test's own queries, the
// DSN that phased's children get, and the server's port.
type PG struct {
	DB   *pgx.Conn
	DSN  string
	Port int
}

var pgSkipOnce sync.Once

// PGTest connects to the test database (PHASED_TEST_PG_DSN, else the local
// default). An unreachable database skips the test loudly (see shout), and
// fails it under CI=true.
func PGTest(t testing.TB) *PG {
	t.Helper()
	dsn := os.Getenv("PHASED_TEST_PG_DSN")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(dsn)
	if err == nil {
		cfg.RuntimeParams["application_name"] = "phased-e2e-test"
		var conn *pgx.Conn
		if conn, err = pgx.ConnectConfig(ctx, cfg); err == nil {
			t.Cleanup(func() { conn.Close(context.Background()) })
			return &PG{DB: conn, DSN: dsn, Port: int(cfg.Port)}
		}
	}
	msg := fmt.Sprintf("!!! PostgreSQL at %s is unreachable (%v): the pool-per-child tests did NOT run; set PHASED_TEST_PG_DSN", dsn, err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	pgSkipOnce.Do(func() { shout(msg) })
	t.Skip(msg)
	return nil
}

// shout writes msg on a line where a person sees it even when the package
// passes: in package list mode (`go test ./...`, `make test`) the go command
// shows a passing package's output only with -v, so a test binary run by it
// writes to the go command's own stderr instead.
func shout(msg string) {
	ppid := os.Getppid()
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", ppid)); !testing.Verbose() && strings.TrimSpace(string(comm)) == "go" {
		if f, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/2", ppid), os.O_WRONLY|os.O_APPEND, 0); err == nil {
			fmt.Fprintln(f, msg)
			f.Close()
			return
		}
	}
	fmt.Fprintln(os.Stderr, msg)
}

// SkipLoudly skips t for want of something the machine lacks (a Debian
// package, say), with msg shouted where a person sees it (see shout); under
// CI=true, where .ci/run installs what the suite needs, it fails t instead.
func SkipLoudly(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	shout("!!! SKIPPED " + t.Name() + ": " + msg)
	t.Skip(msg)
}

// appSeq numbers the apps under test in this process (see AppDSN).
var appSeq atomic.Int64

// AppDSN returns a DSN for one app under test, with an application_name of
// its own, so that pg_stat_activity counts exactly that app's connections
// (and not those of another test or another run on the same server).
func (p *PG) AppDSN(t testing.TB) (dsn, name string) {
	t.Helper()
	name = fmt.Sprintf("phased-e2e-%d-%d", os.Getpid(), appSeq.Add(1))
	if u, err := url.Parse(p.DSN); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("application_name", name)
		u.RawQuery = q.Encode()
		return u.String(), name
	}
	return p.DSN + " application_name=" + name, name // keyword/value form
}
