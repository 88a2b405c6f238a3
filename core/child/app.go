package child

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"

	"github.com/phasedhq/phased/core/child/appserver"
	"github.com/phasedhq/phased/core/child/proxy"
	"github.com/phasedhq/phased/internal/childrt"
	"github.com/phasedhq/phased/internal/contract"
)

// serveApp serves an app: the child starts its app server after its
// child-init hooks, forwards every request to it while it serves, and
// stops it once it has drained, before its child-exit hooks. The app
// server dying while the child serves is the child's death too: the master
// replaces it.
func serveApp(rt *childrt.Runtime, a *contract.App) error {
	if a.Type != contract.AppHTTP {
		return fmt.Errorf("app.type %s: not served by this build", a.Type)
	}
	var srv *appserver.Server
	threads := max(rt.Threads, 1)
	h := proxy.New(proxy.Options{
		Dial: func(ctx context.Context) (net.Conn, error) {
			if srv == nil {
				return nil, errors.New("the app server is not running")
			}
			return srv.Dial(ctx)
		},
		Conns: threads, MaxBodySize: a.MaxBodySize, BodyBufferSize: a.BodyBufferSize,
		ResponseBufferSize: a.ResponseBufferSize, MaxTempFileSize: a.MaxTempFileSize, TempDir: a.Dir, Log: rt.Log,
	})
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
			if srv != nil {
				srv.Stop()
			}
			return nil
		}},
	}
	return app.ServeRuntime(rt, http.Handler(h))
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

// appEnv is the app server's environment: the child's (the master's, as
// it passed it on) with app.env.
func appEnv(a *contract.App) []string {
	env := contract.Environ(os.Environ())
	keys := make([]string, 0, len(a.Env))
	for k := range a.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+a.Env[k])
	}
	return env
}
