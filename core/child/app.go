package child

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/phasedhq/phased/core/child/appserver"
	"github.com/phasedhq/phased/core/child/cgi"
	"github.com/phasedhq/phased/core/child/fastcgi"
	"github.com/phasedhq/phased/core/child/internal/gateway"
	"github.com/phasedhq/phased/core/child/proxy"
	"github.com/phasedhq/phased/core/child/static"
	"github.com/phasedhq/phased/internal/childrt"
	"github.com/phasedhq/phased/internal/contract"
	"github.com/phasedhq/phased/internal/sockconn"
)

// serveApp serves an app: the child starts its app server after its
// child-init hooks, forwards every request to it while it serves, and
// stops it once it has drained, before its child-exit hooks. The app
// server dying while the child serves is the child's death too: the master
// replaces it.
func serveApp(rt *childrt.Runtime, a *contract.App) error {
	var srv *appserver.Server
	threads := max(rt.Threads, 1)
	dial := func(ctx context.Context) (net.Conn, error) {
		if srv == nil {
			return nil, errors.New("the app server is not running")
		}
		return srv.Dial(ctx)
	}
	exchange := func() (*sockconn.Exchange, error) {
		if srv == nil {
			return nil, errors.New("the app server is not running")
		}
		return srv.Exchange()
	}
	st := rt.Contract.Static
	files := static.New(static.Options{Root: st.Root, DirectoryListing: st.Listing})
	var h http.Handler
	var px *proxy.Proxy
	switch a.Type {
	case contract.AppHTTP:
		px = proxy.New(proxy.Options{
			Dial: dial, Exchange: exchange, Conns: threads, MaxBodySize: a.MaxBodySize, BodyBufferSize: a.BodyBufferSize,
			ResponseBufferSize: a.ResponseBufferSize, MaxTempFileSize: a.MaxTempFileSize, TempDir: a.Dir, Log: rt.Log,
			ReadTimeout: a.ReadTimeout, SendfilePaths: a.SendfilePaths,
		})
		// The files below document_root first, as Passenger serves an
		// app's public folder (and nginx's try_files $uri): what is not
		// there is the app's.
		h = static.New(static.Options{Root: st.Root, Next: px})
		rt.Forward = px // plain requests without net/http
		rt.Files, _ = h.(childrt.FastFiles)
	case contract.AppFastCGI:
		o := fastcgi.Options{Dial: dial, Network: "unix", Address: "(the child's own)", Root: st.Root, Index: a.FastCGIIndex,
			Extensions: a.FastCGIExtensions, Static: files, MaxBufferedBody: a.MaxBodySize, BufferBody: a.BodyBufferSize, TempDir: a.Dir,
			ResponseBuffer: a.ResponseBufferSize, MaxTempFileSize: a.MaxTempFileSize, Logger: rt.Log, Software: "phased",
			ReadTimeout: a.ReadTimeout, SendfilePaths: a.SendfilePaths}
		if a.ReadTimeout == 0 {
			o.ReadTimeout = -1 // app.read_timeout 0: no bound (the client's 0 is its default)
		}
		if len(a.Command) > 0 && a.FastCGIAddress == "" && phpWorkers(a) >= threads {
			// The child's own php-cgi has a worker for every connection
			// the child may hold (one a slot): connections are kept
			// between requests, as mod_fcgid keeps its connection to each
			// PHP process and nginx's fastcgi_keep_conn does, sparing both
			// sides a connection a request (1.3-1.5x the requests a
			// second of PHP's hello world on 2 cores).
			o.KeepConn, o.MaxIdleConns = true, threads
		}
		if addr := a.FastCGIAddress; addr != "" {
			o.Dial, o.Network, o.Address = nil, "tcp", addr
			if p, ok := strings.CutPrefix(addr, "unix:"); ok {
				o.Network, o.Address = "unix", p
			}
		}
		fh, err := fastcgi.New(o)
		if err != nil {
			return fmt.Errorf("app.fastcgi: %w", err)
		}
		defer fh.Close()
		h = fh
	case contract.AppCGI:
		var aliases []cgi.Alias
		for prefix, dir := range a.CGIPaths {
			aliases = append(aliases, cgi.Alias{Prefix: prefix, Dir: dir})
		}
		sort.Slice(aliases, func(i, j int) bool { return len(aliases[i].Prefix) > len(aliases[j].Prefix) })
		ch, err := cgi.New(cgi.Options{Aliases: aliases, Next: files, Timeout: a.CGITimeout, DocumentRoot: st.Root,
			Env: appEnvList(a), MaxBufferedBody: a.MaxBodySize, Logger: rt.Log, Software: "phased"})
		if err != nil {
			return fmt.Errorf("app.cgi: %w", err)
		}
		h = ch
	default:
		return fmt.Errorf("app.type %s: not served by this build", a.Type)
	}
	if a.Type != contract.AppHTTP { // the proxy has its own
		h = maxBody(h, a.MaxBodySize)
	}
	if len(a.Command) == 0 { // CGI, or an external FastCGI server: nothing to run
		return rt.Serve(h)
	}
	app := &childrt.App{
		Inits: []func(context.Context, *childrt.Runtime) error{func(ctx context.Context, rt *childrt.Runtime) error {
			var err error
			srv, err = appserver.Start(ctx, appserver.Options{
				Command: a.Command, Env: appEnv(a), Listen: a.Listen, SocketDir: a.Dir,
				Threads: threads, Slot: rt.Slot, Generation: rt.Generation, HealthCheck: a.HealthCheck,
				StartTimeout: a.StartTimeout, StopTimeout: a.StopTimeout, StopSignal: contract.Signals[a.StopSignal], Log: rt.Log,
			})
			if err != nil {
				return err
			}
			rt.SetAppPID(srv.PID())
			go watch(rt, srv)
			return nil
		}},
		Exits: []func(context.Context) error{func(context.Context) error {
			if px != nil {
				px.CloseIdle() // drained: every connection to the app is idle
			}
			if srv != nil {
				srv.Stop()
			}
			return nil
		}},
	}
	return app.ServeRuntime(rt, http.Handler(h))
}

// maxBody answers 413 to a request that says its body is over max
// (app.max_body_size), before the script sees a byte of it, and hands the
// others to h; h bounds the bodies of unknown length itself. The rest of
// the body is read and dropped after the answer, within bounds
// (gateway.TooLarge), so that a client still sending it gets the answer.
func maxBody(h http.Handler, max int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			gateway.TooLarge(w, r, gateway.MaxBodyMessage)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// watch makes the child fail when its app server exits unasked.
func watch(rt *childrt.Runtime, srv *appserver.Server) {
	<-srv.Exited()
	if srv.Stopping() {
		return
	}
	rt.Log.Error("app server exited unexpectedly; this child exits and is replaced", "app_pid", srv.PID(),
		"status", srv.ExitStatus(), "stderr", srv.Tail())
	rt.Fail(fmt.Errorf("app server (pid %d) exited: %s", srv.PID(), srv.ExitStatus()))
}

// appEnvList is app.env as NAME=value entries, in name order.
func appEnvList(a *contract.App) []string {
	keys := make([]string, 0, len(a.Env))
	for k := range a.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+a.Env[k])
	}
	return out
}

// phpWorkers is how many connections a php-cgi started with a's
// environment serves at once: PHP_FCGI_CHILDREN worker processes (app.env,
// else the child's environment), each serving one connection for as long
// as it stays open; without it php-cgi serves one itself.
func phpWorkers(a *contract.App) int {
	v, ok := a.Env["PHP_FCGI_CHILDREN"]
	if !ok {
		v = os.Getenv("PHP_FCGI_CHILDREN")
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 1 {
		return n
	}
	return 1
}

// appEnv is the app server's environment: the child's (the master's, as
// it passed it on) with app.env.
func appEnv(a *contract.App) []string {
	return append(contract.Environ(os.Environ()), appEnvList(a)...)
}
