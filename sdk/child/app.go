package child

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Option configures Serve.
type Option func(*appConfig)

type appConfig struct {
	addr  string
	inits []func(context.Context, *Runtime) error
	exits []func(context.Context) error
}

// OnInit registers f to run in every new child before it accepts: the place
// to open per-child resources such as a database pool (Unicorn's
// after_fork). Hooks run in registration order, after the config's exec
// child-init hooks; the first error stops them, and Serve returns an error
// wrapping ErrChildInit (the process should exit with ExitChildInit, as Main
// does, so the master backs off). ctx is cancelled when the child is told to
// stop before it served. A hook that fails cleans up after itself: OnExit
// hooks run only after serving.
func OnInit(f func(ctx context.Context, rt *Runtime) error) Option {
	return func(c *appConfig) { c.inits = append(c.inits, f) }
}

// OnExit registers f to run once the child has drained, after its last
// request and before the config's exec child-exit hooks: the place to close
// per-child resources. Hooks run in reverse registration order, all of them
// even if one fails; ctx is bounded by the drain timeout.
func OnExit(f func(ctx context.Context) error) Option {
	return func(c *appConfig) { c.exits = append(c.exits, f) }
}

// Addr is where Serve listens outside phased (development mode). Zero
// value: 127.0.0.1:$PORT when PORT is set (PORT may also be a host:port),
// else 127.0.0.1:8080. Under phased the master's listeners are used and Addr
// is ignored.
func Addr(addr string) Option {
	return func(c *appConfig) { c.addr = addr }
}

// Serve is the one call a Go program makes to serve h as a phased child.
//
// Under phased (Current succeeds) the order is: the config's exec
// child-init hooks, the OnInit hooks, serving on the inherited listeners
// until the master asks the child to go (see the package documentation),
// the drain, the OnExit hooks, then the config's exec child-exit hooks.
//
// Outside phased (Current returns ErrNotChild) the same program serves h on
// its own address (see Addr) for development: OnInit hooks run once before
// it accepts, SIGINT or SIGTERM shut it down gracefully (a second signal
// closes every connection at once), then the OnExit hooks run.
//
// Serve returns nil after a clean stop, and an error wrapping ErrChildInit
// when a child-init hook failed: main should then exit with ExitChildInit.
// Main does all of that.
func Serve(h http.Handler, opts ...Option) error {
	var c appConfig
	for _, o := range opts {
		o(&c)
	}
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

// Main runs Serve and ends the process when it fails: with ExitChildInit
// when a child-init hook failed, with 1 on any other error (logged on
// stderr). It returns when Serve returned nil.
func Main(h http.Handler, opts ...Option) {
	err := Serve(h, opts...)
	if err == nil {
		return
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", progName(), err)
	if errors.Is(err, ErrChildInit) {
		os.Exit(ExitChildInit)
	}
	os.Exit(1)
}

func progName() string {
	if len(os.Args) == 0 {
		return "app"
	}
	name := os.Args[0]
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	return name
}

// serveChild serves h on a master's runtime, reading stop signals from sigs.
func (c *appConfig) serveChild(rt *Runtime, h http.Handler, sigs chan os.Signal) error {
	fail := func(err error) error {
		rt.closeListeners()
		rt.Log.Error("child-init failed; this child exits", "err", err)
		return fmt.Errorf("%w: %w", ErrChildInit, err)
	}
	if err := rt.runHooks("child-init"); err != nil {
		return fail(err)
	}
	stopped, err := c.init(rt, sigs)
	if err != nil && !stopped {
		return fail(err)
	}
	if stopped {
		rt.closeListeners()
		rt.Log.Info("child told to stop before it served; exiting")
		if err == nil {
			c.exit(rt)
		}
		if r := rt.runHooks("child-exit"); r != nil {
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
	if r := rt.runHooks("child-exit"); r != nil {
		rt.Log.Error("child-exit failed", "err", r)
	}
	return err
}

// init runs the OnInit hooks with a context cancelled by a stop signal. It
// reports whether such a signal came; a signal that came stays consumed.
func (c *appConfig) init(rt *Runtime, sigs chan os.Signal) (stopped bool, err error) {
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
	for i, f := range c.inits {
		if err = f(ctx, rt); err != nil {
			err = fmt.Errorf("OnInit hook %d of %d: %w", i+1, len(c.inits), err)
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
func (c *appConfig) exit(rt *Runtime) {
	bound := rt.DrainTimeout
	if bound <= 0 {
		bound = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	for i := len(c.exits) - 1; i >= 0; i-- {
		if err := c.exits[i](ctx); err != nil {
			rt.Log.Error("child-exit failed", "err", fmt.Errorf("OnExit hook %d of %d: %w", i+1, len(c.exits), err))
		}
	}
}

// devAddr is the development address: c.addr, else PORT, else 8080.
func (c *appConfig) devAddr() string {
	if c.addr != "" {
		return c.addr
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
func (c *appConfig) standalone(h http.Handler, sigs chan os.Signal) error {
	rt := &Runtime{
		Generation:   1,
		DrainTimeout: 30 * time.Second,
		Timeouts:     Timeouts{ReadHeader: 10 * time.Second, Read: 60 * time.Second, Write: 60 * time.Second, Idle: 5 * time.Second},
		Model:        ModelWorker,
	}
	rt.Log = newLogger(os.Stderr, "text", os.Getenv("LOG_LEVEL")).With("pid", os.Getpid())
	ln, err := net.Listen("tcp", c.devAddr())
	if err != nil {
		return err
	}
	rt.listeners = []net.Listener{ln}
	rt.addrs = []string{ln.Addr().String()}
	return c.serveStandalone(rt, h, sigs)
}

func (c *appConfig) serveStandalone(rt *Runtime, h http.Handler, sigs chan os.Signal) error {
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
