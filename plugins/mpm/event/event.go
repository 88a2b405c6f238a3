package event

import (
	"github.com/phasedhq/phased/plugins/mpm/internal/policy"
	"github.com/phasedhq/phased/sdk/mpm"
)

// spec is the event MPM's place among the threaded MPMs: Apache event's
// compile-time limits (MAX_SERVER_LIMIT, MAX_THREAD_LIMIT).
var spec = policy.ThreadedSpec{Name: "event", Model: mpm.Event, MaxServerLimit: 20000, MaxThreadLimit: 100000, Event: true}

// New returns the event MPM, configured with Apache's defaults until
// Configure is called.
func New() mpm.MPM { return newPolicy() }

func newPolicy() *policy.Policy {
	return policy.New("event", func(s map[string]any) (*policy.Config, error) { return policy.ParseThreaded(spec, s) })
}
