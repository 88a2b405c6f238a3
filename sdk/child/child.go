// Package child makes a Go program a phased child: an http.Handler served on
// the sockets its master opened, with per-child init and exit hooks.
//
//	func main() {
//		child.Main(handler, child.OnInit(openPool), child.OnExit(closePool))
//	}
//
// Under phased, every child runs the config's exec child-init hooks, then
// the OnInit hooks (open a database pool here, one per child, as Unicorn's
// after_fork), then serves until its master retires it: it stops accepting,
// lets every request in flight finish, closes idle keep-alive connections,
// then runs the OnExit hooks and the config's exec child-exit hooks. The
// master counts the child's requests in its scoreboard and serves the
// status page and the metrics from it, as for phased's own children.
//
// Outside phased (in development) the same program serves on its own
// address (see Addr): OnInit hooks run once, SIGINT or SIGTERM shut it down
// gracefully, then OnExit hooks run.
package child

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/phasedhq/phased/internal/childrt"
)

// ExitChildInit is the exit status of a child whose child-init failed
// (Apache's APEXIT_CHILDINIT): the master backs off before replacing it.
// Main exits with it; a program that calls Serve itself should too.
const ExitChildInit = 3

// ErrChildInit is returned by Serve when a child-init hook failed, or the
// master's description of the child could not be read.
var ErrChildInit = childrt.ErrChildInit

// Runtime is what a child knows of itself, as OnInit hooks see it.
type Runtime struct {
	// Generation is the child's generation (1 at first start; one more for
	// every graceful restart).
	Generation int
	// Slot is the child's slot within its generation (0-based): unique
	// among the generation's live children.
	Slot int
	// Threads is how many requests the child serves at once
	// (threads_per_child; 1 under prefork): the size of a per-child pool
	// that never makes a request wait for a connection.
	Threads int
	// MasterPID is the master's pid; 0 outside phased.
	MasterPID int
	// Log is the child's error log, tagged with its pid, generation and
	// slot; the master writes it into its own error log.
	Log *slog.Logger
}

// Option configures Serve.
type Option struct{ apply func(*childrt.App) }

// OnInit registers f to run in every new child before it accepts: the place
// to open per-child resources such as a database pool. Hooks run in
// registration order, after the config's exec child-init hooks; the first
// error stops them, and Serve returns an error wrapping ErrChildInit. ctx is
// cancelled when the child is told to stop before it served. A hook that
// fails cleans up after itself: OnExit hooks run only after serving.
func OnInit(f func(ctx context.Context, rt *Runtime) error) Option {
	return Option{func(a *childrt.App) {
		a.Inits = append(a.Inits, func(ctx context.Context, rt *childrt.Runtime) error {
			threads := rt.Threads
			if threads == 0 {
				threads = 1
			}
			return f(ctx, &Runtime{Generation: rt.Generation, Slot: rt.Slot, Threads: threads, MasterPID: rt.MasterPID, Log: rt.Log})
		})
	}}
}

// OnExit registers f to run once the child has drained, after its last
// request and before the config's exec child-exit hooks: the place to close
// per-child resources. Hooks run in reverse registration order, all of them
// even if one fails; ctx is bounded by the drain timeout.
func OnExit(f func(ctx context.Context) error) Option {
	return Option{func(a *childrt.App) { a.Exits = append(a.Exits, f) }}
}

// Addr is where Serve listens outside phased (development mode). Zero
// value: 127.0.0.1:$PORT when PORT is set (PORT may also be a host:port),
// else 127.0.0.1:8080. Under phased the master's listeners are used and Addr
// is ignored.
func Addr(addr string) Option {
	return Option{func(a *childrt.App) { a.Addr = addr }}
}

// Serve serves h as a phased child, or standalone outside phased (see the
// package documentation). It returns nil after a clean stop, and an error
// wrapping ErrChildInit when a child-init hook failed: the program should
// then exit with ExitChildInit. Main does all of that.
func Serve(h http.Handler, opts ...Option) error {
	var a childrt.App
	for _, o := range opts {
		if o.apply != nil {
			o.apply(&a)
		}
	}
	return a.Serve(h)
}

// Main runs Serve and ends the process when it fails: with ExitChildInit
// when a child-init hook failed, with 1 on any other error (logged on
// stderr). It returns when Serve returned nil.
func Main(h http.Handler, opts ...Option) {
	err := Serve(h, opts...)
	if err == nil {
		return
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", filepath.Base(os.Args[0]), err)
	if errors.Is(err, ErrChildInit) {
		os.Exit(ExitChildInit)
	}
	os.Exit(1)
}
