// Command tracehook is a hook plugin for phased's end-to-end tests. It
// implements every master phase and child events, and records each call in
// the master's server_root (the plugin's working directory):
//
//   - trace.log gets "plugin PHASE PASS GENERATION pid=PID" for every phase
//     run, the same file the tests' exec hooks append to, so one file shows
//     the order of plugin and exec hooks;
//   - events.log gets "spawned|exited pid=P slot=S generation=G status=S"
//     for every child event.
//
// It misbehaves on demand, steered by files there: CRASH-PHASE makes that
// phase exit the process (status 3), HANG-PHASE makes it never answer (it
// ignores its context). A file PROTOCOL-2 makes it serve protocols 1 and 2
// only, as a plugin built with an older SDK. It imports only sdk/.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/phasedhq/phased/sdk/hook"
)

type tracer struct{}

// Interface guards: every phase and the child events.
var (
	_ hook.Configurer      = tracer{}
	_ hook.LogOpener       = tracer{}
	_ hook.PostConfigurer  = tracer{}
	_ hook.ShutdownHandler = tracer{}
	_ hook.ChildWatcher    = tracer{}
)

func (tracer) Describe(context.Context, *hook.DescribeRequest) (*hook.DescribeResponse, error) {
	return hook.Implemented(tracer{}), nil
}

// phase records req, then misbehaves if asked to.
func phase(req *hook.PhaseRequest) (*hook.PhaseResponse, error) {
	err := appendLine("trace.log", fmt.Sprintf("plugin %s %d %d pid=%d", req.Phase, req.Pass, req.Generation, os.Getpid()))
	if err != nil {
		return nil, err
	}
	if exists("CRASH-" + string(req.Phase)) {
		os.Exit(3)
	}
	if exists("HANG-" + string(req.Phase)) {
		hook.Logger().Info("hanging, as asked", "phase", string(req.Phase))
		select {}
	}
	return &hook.PhaseResponse{}, nil
}

func (tracer) Configure(_ context.Context, req *hook.PhaseRequest) (*hook.ConfigureResponse, error) {
	_, err := phase(req)
	return &hook.ConfigureResponse{}, err
}

func (tracer) OpenLogs(_ context.Context, req *hook.PhaseRequest) (*hook.PhaseResponse, error) {
	return phase(req)
}

func (tracer) PostConfig(_ context.Context, req *hook.PhaseRequest) (*hook.PhaseResponse, error) {
	return phase(req)
}

func (tracer) Shutdown(_ context.Context, req *hook.PhaseRequest) (*hook.PhaseResponse, error) {
	return phase(req)
}

func event(req *hook.ChildEventRequest) error {
	return appendLine("events.log", fmt.Sprintf("%s pid=%d slot=%d generation=%d status=%s", req.Kind, req.PID, req.Slot, req.Generation, req.Status))
}

func (tracer) ChildSpawned(_ context.Context, req *hook.ChildEventRequest) error { return event(req) }
func (tracer) ChildExited(_ context.Context, req *hook.ChildEventRequest) error  { return event(req) }

func exists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// appendLine appends line to the file name with one write, so that lines
// of several writers never mix.
func appendLine(name, line string) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	_, err = f.WriteString(line + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func main() {
	if _, err := os.Stat("PROTOCOL-2"); err == nil {
		hook.Serve(tracer{}, hook.WithProtocols(1, 2))
		return
	}
	hook.Serve(tracer{})
}
