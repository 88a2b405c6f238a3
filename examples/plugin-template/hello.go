// Command phased-hello is a template for a phased hook plugin that lives in
// a module of its own: copy this folder, rename the module in go.mod, point
// the replace directive at your checkout of phased (or require a released
// version), and build:
//
//	go build -o bin/phased-hello .
//
// Hang it on a phase with its settings:
//
//	hooks:
//	  - name: hello
//	    plugin: ./bin/phased-hello
//	    phase: post-config
//	    settings: {greeting: "hello from my plugin"}
//
// At post-config it logs its greeting, through the plugin's logger, into
// phased's error log. It imports only the standard library and phased's
// sdk/.
package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/phasedhq/phased/sdk/hook"
)

// Hello is the plugin: a PostConfigurer with one setting, greeting.
type Hello struct {
	log *slog.Logger
}

// Interface guards: what Describe announces.
var (
	_ hook.Hook           = (*Hello)(nil)
	_ hook.PostConfigurer = (*Hello)(nil)
)

// Describe checks the settings and announces the post-config phase.
func (h *Hello) Describe(_ context.Context, req *hook.DescribeRequest) (*hook.DescribeResponse, error) {
	if _, err := greeting(req.Settings); err != nil {
		return nil, err
	}
	resp := hook.Implemented(h)
	resp.Name = "hello"
	return resp, nil
}

// PostConfig logs the greeting once the configuration is final; on pass 1,
// the rehearsal of the double start, it does nothing.
func (h *Hello) PostConfig(_ context.Context, req *hook.PhaseRequest) (*hook.PhaseResponse, error) {
	g, err := greeting(req.Settings)
	if err != nil {
		return nil, err
	}
	if req.Pass > 1 {
		h.log.Info(g, "pass", req.Pass, "generation", req.Generation)
	}
	return &hook.PhaseResponse{}, nil
}

// greeting reads the one setting, greeting, a string ("hello" when unset).
// Anything else is a *hook.SettingError, which phased reports as
// hooks[i].settings.KEY.
func greeting(settings map[string]any) (string, error) {
	g := "hello"
	for key, v := range settings {
		s, ok := v.(string)
		if key != "greeting" || !ok {
			return "", &hook.SettingError{Key: key, Msg: fmt.Sprintf("the one setting is greeting, a string; got %v", v)}
		}
		g = s
	}
	return g, nil
}

func main() {
	hook.Serve(&Hello{log: hook.Logger()})
}
