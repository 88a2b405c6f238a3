package worker

import (
	"github.com/phasedhq/phased/plugins/mpm/internal/policy"
	"github.com/phasedhq/phased/sdk/mpm"
)

// spec is the worker MPM's place among the threaded MPMs: Apache worker's
// compile-time limits (MAX_SERVER_LIMIT, MAX_THREAD_LIMIT).
var spec = policy.ThreadedSpec{Name: "worker", Model: mpm.Worker, MaxServerLimit: 20000, MaxThreadLimit: 20000}

// New returns the worker MPM, configured with Apache's defaults until
// Configure is called.
func New() mpm.MPM { return newPolicy() }

func newPolicy() *policy.Policy {
	return policy.New("worker", func(s map[string]any) (*policy.Config, error) { return policy.ParseThreaded(spec, s) })
}
