// Command app-pgpool is a Go application served by phased with one
// PostgreSQL pool per child (connect after the fork, never in the master,
// as forking servers such as Unicorn teach with after_fork). Each child opens its pool in child-init, pings it, serves GET /
// with a query, and closes its pool when it retires.
//
// Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test;
// its application_name, default phased-app-pgpool, tags the connections)
// and PGPOOL_SIZE (connections per child, default 2). Run outside phased it
// serves on 127.0.0.1:$PORT (default 8080) for development.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/phasedhq/phased/sdk/child"
)

// appName is the application_name of every connection, so that
// pg_stat_activity tells this app's connections apart.
const appName = "phased-app-pgpool"

const defaultDSN = "postgres://postgres@127.0.0.1:5432/test"

// app holds the child's pool, opened in child-init.
type app struct {
	pool *pgxpool.Pool
	log  *slog.Logger
}

// poolConfig reads the pool's settings from the environment: DATABASE_URL
// (default defaultDSN) and PGPOOL_SIZE (default 2). The pool opens all its
// connections at once and keeps them (MinConns = MaxConns = size), and tags
// them with application_name, the URL's own or appName.
func poolConfig() (*pgxpool.Config, error) {
	dsn := os.Getenv("DATABASE_URL")
	if dsn == "" {
		dsn = defaultDSN
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	size := 2
	if s := os.Getenv("PGPOOL_SIZE"); s != "" {
		if size, err = strconv.Atoi(s); err != nil || size < 1 || size > 1000 {
			return nil, fmt.Errorf("PGPOOL_SIZE %q: want an integer from 1 to 1000", s)
		}
	}
	cfg.MaxConns = int32(size)
	cfg.MinConns = int32(size) // open them all now: the pool is per child, sized for it
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = appName
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > 5*time.Second {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	return cfg, nil
}

// open is the child-init hook (Unicorn's after_fork): it opens this child's
// pool and pings it, so that a child that cannot reach the database fails
// before it accepts.
func (a *app) open(ctx context.Context, rt *child.Runtime) error {
	cfg, err := poolConfig()
	if err != nil {
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("opening the pool: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return fmt.Errorf("pinging %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	a.pool, a.log = pool, rt.Log
	a.log.Info("database pool open", "size", cfg.MaxConns)
	return nil
}

// close is the child-exit hook: it runs after the child's last request and
// closes the pool, so the database sees this child's connections go.
func (a *app) close(context.Context) error {
	a.pool.Close()
	a.log.Info("database pool closed")
	return nil
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	var now time.Time
	if err := a.pool.QueryRow(r.Context(), "SELECT now()").Scan(&now); err != nil {
		http.Error(w, "database: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintf(w, "pid %d: database time %s\n", os.Getpid(), now.UTC().Format(time.RFC3339Nano))
}

func main() {
	a := &app{}
	child.Main(a, child.OnInit(a.open), child.OnExit(a.close))
}
