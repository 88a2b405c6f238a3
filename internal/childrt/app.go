package childrt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/phasedhq/phased/internal/loglevel"
	"github.com/phasedhq/phased/internal/phase"
)

// App is a Go app served as a phased child: the engine behind sdk/child's
// Serve, with the app's own init and exit hooks around serving.
type App struct {
	// Addr is where the app listens outside phased (development mode).
	// Zero value: 127.0.0.1:$PORT when PORT is set (PORT may also be a
	// host:port), else 127.0.0.1:8080. Under phased it is ignored.
	Addr string
	// Inits run in every new child before it accepts, in order, after the
	// config's exec child-init hooks; the first error stops them. ctx is
	// cancelled when the child is told to stop before it served.
	Inits []func(ctx context.Context, rt *Runtime) error
	// Exits run once the child has drained, in reverse order, all of them,
	// before the config's exec child-exit hooks; ctx is bounded by the
	// drain timeout.
	Exits []func(ctx context.Context) error
}

// Serve serves h: under phased (Current succeeds) the config's exec
// child-init hooks, the Inits, serving on the inherited listeners until the
// master asks the child to go, the drain, the Exits, then the config's exec
// child-exit hooks. Outside phased (ErrNotChild) it serves h on Addr for
// development: Inits run once before it accepts, SIGINT or SIGTERM shut it
// down gracefully (a second signal closes every connection at once), then
// the Exits run.
//
// It returns nil after a clean stop, and an error wrapping ErrChildInit when
// a child-init hook failed or the master's contract could not be read.
func (c *App) Serve(h http.Handler) error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGWINCH, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	rt, err := Current()
	if errors.Is(err, ErrNotChild) {
		return c.standalone(h, sigs)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrChildInit, err)
	}
	return c.serveChild(rt, h, sigs)
}

// ServeRuntime is Serve on a runtime the caller took with Current (phased's
// own child, which builds its handler from the runtime's contract).
func (c *App) ServeRuntime(rt *Runtime, h http.Handler) error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGWINCH, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	return c.serveChild(rt, h, sigs)
}

// serveChild serves h on a master's runtime, reading stop signals from sigs.
func (c *App) serveChild(rt *Runtime, h http.Handler, sigs chan os.Signal) error {
	if err := rt.runHooks(phase.ChildInit); err != nil {
		return rt.failInit(err)
	}
	stopped, err := c.init(rt, sigs)
	if err != nil && !stopped {
		return rt.failInit(err)
	}
	if stopped {
		rt.closeListeners()
		rt.Log.Info("child told to stop before it served; exiting")
		if err == nil {
			c.exit(rt)
		}
		if r := rt.runHooks(phase.ChildExit); r != nil {
			rt.Log.Error("child-exit failed", "err", r)
		}
		return nil
	}
	// The exec hooks ran (child-init) or will run (child-exit) here, around
	// the app's own hooks: Runtime.serve must not run them again.
	hooks := rt.hooks
	rt.hooks = nil
	err = rt.serve(h, sigs)
	rt.hooks = hooks
	c.exit(rt)
	if r := rt.runHooks(phase.ChildExit); r != nil {
		rt.Log.Error("child-exit failed", "err", r)
	}
	return err
}

// init runs the OnInit hooks with a context cancelled by a stop signal. It
// reports whether such a signal came; a signal that came stays consumed.
func (c *App) init(rt *Runtime, sigs chan os.Signal) (stopped bool, err error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case sig := <-sigs:
				if sig == syscall.SIGHUP {
					continue // the master's business, not a child's
				}
				mu.Lock()
				stopped = true
				mu.Unlock()
				cancel()
				return
			}
		}
	}()
	for i, f := range c.Inits {
		if err = f(ctx, rt); err != nil {
			if len(c.Inits) > 1 { // which one; one alone says what it is
				err = fmt.Errorf("OnInit hook %d of %d: %w", i+1, len(c.Inits), err)
			}
			break
		}
	}
	close(done)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return stopped, err
}

// exit runs the OnExit hooks in reverse order, logging their errors.
func (c *App) exit(rt *Runtime) {
	bound := rt.DrainTimeout
	if bound <= 0 {
		bound = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	for i := len(c.Exits) - 1; i >= 0; i-- {
		if err := c.Exits[i](ctx); err != nil {
			rt.Log.Error("child-exit failed", "err", fmt.Errorf("OnExit hook %d of %d: %w", i+1, len(c.Exits), err))
		}
	}
}

// devAddr is the development address: c.addr, else PORT, else 8080.
func (c *App) devAddr() string {
	if c.Addr != "" {
		return c.Addr
	}
	if p := os.Getenv("PORT"); p != "" {
		if strings.Contains(p, ":") {
			return p
		}
		return "127.0.0.1:" + p
	}
	return "127.0.0.1:8080"
}

// standalone serves h on its own address, outside phased.
func (c *App) standalone(h http.Handler, sigs chan os.Signal) error {
	rt := &Runtime{
		Generation:   1,
		DrainTimeout: 30 * time.Second,
		Timeouts:     Timeouts{ReadHeader: 10 * time.Second, Read: 60 * time.Second, Write: 60 * time.Second, Idle: 5 * time.Second},
		Model:        ModelWorker,
	}
	level, err := loglevel.Parse(os.Getenv("LOG_LEVEL"))
	if err != nil {
		level = slog.LevelInfo
	}
	rt.Log = newLogger(os.Stderr, "text", level).With("pid", os.Getpid())
	ln, err := net.Listen("tcp", c.devAddr())
	if err != nil {
		return err
	}
	rt.listeners = []net.Listener{ln}
	rt.addrs = []string{ln.Addr().String()}
	return c.serveStandalone(rt, h, sigs)
}

func (c *App) serveStandalone(rt *Runtime, h http.Handler, sigs chan os.Signal) error {
	ln := rt.listeners[0]
	stopped, err := c.init(rt, sigs)
	if err != nil && !stopped {
		ln.Close()
		rt.Log.Error("child-init failed", "err", err)
		return fmt.Errorf("%w: %w", ErrChildInit, err)
	}
	if stopped {
		ln.Close()
		if err == nil {
			c.exit(rt)
		}
		return nil
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: rt.Timeouts.ReadHeader,
		ReadTimeout:       rt.Timeouts.Read,
		WriteTimeout:      rt.Timeouts.Write,
		IdleTimeout:       rt.Timeouts.Idle,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	rt.Log.Info("serving outside phased (development mode)", "listen", ln.Addr().String())
	var serveErr error
wait:
	for {
		select {
		case err := <-errc:
			if !errors.Is(err, http.ErrServerClosed) {
				serveErr = err
			}
			break wait
		case sig := <-sigs:
			if sig == syscall.SIGHUP || sig == syscall.SIGWINCH {
				continue
			}
			rt.Log.Info("shutting down gracefully", "signal", sig.String())
			ctx, cancel := context.WithTimeout(context.Background(), rt.DrainTimeout)
			go func() {
				select {
				case <-sigs: // a second signal: stop now
					srv.Close()
				case <-ctx.Done():
				}
			}()
			if srv.Shutdown(ctx) != nil {
				srv.Close()
			}
			cancel()
			break wait
		}
	}
	c.exit(rt)
	return serveErr
}
