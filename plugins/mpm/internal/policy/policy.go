package policy

import (
	"context"

	"github.com/phasedhq/phased/sdk/mpm"
)

// Parser reads an MPM's settings into a Config (ParsePrefork, or
// ParseThreaded with a spec).
type Parser func(settings map[string]any) (*Config, error)

// Policy is a built-in MPM: a settings parser over the shared maintenance
// Core. It is safe for concurrent use.
type Policy struct {
	name  string
	parse Parser
	core  *Core
}

var _ mpm.MPM = (*Policy)(nil)

// New returns the MPM called name, configured with its defaults (parse of
// no settings) until Configure is called. It panics if the defaults do not
// parse, which the packages' tests rule out.
func New(name string, parse Parser) *Policy {
	cfg, err := parse(nil)
	if err != nil {
		panic(name + ": defaults do not parse: " + err.Error())
	}
	return &Policy{name: name, parse: parse, core: NewCore(cfg)}
}

// Core returns the maintenance state, for tests.
func (p *Policy) Core() *Core { return p.core }

// Configure reads the settings and returns the model and its limits. Clamps
// are reported in Notes; an unknown key, a wrong type or a value out of range
// is a *mpm.SettingError, and leaves the previous configuration in force.
func (p *Policy) Configure(ctx context.Context, req *mpm.ConfigureRequest) (*mpm.ConfigureResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var settings map[string]any
	if req != nil {
		settings = req.Settings
	}
	cfg, err := p.parse(settings)
	if err != nil {
		return nil, err
	}
	p.core.SetConfig(cfg)
	return cfg.Response(), nil
}

// Maintain runs one maintenance tick over the current generation, as
// Apache's perform_idle_server_maintenance.
func (p *Policy) Maintain(ctx context.Context, req *mpm.MaintainRequest) (*mpm.MaintainResponse, error) {
	return p.core.Maintain(ctx, req)
}
