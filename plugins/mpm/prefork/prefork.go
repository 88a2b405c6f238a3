package prefork

import (
	"github.com/phasedhq/phased/plugins/mpm/internal/policy"
	"github.com/phasedhq/phased/sdk/mpm"
)

// New returns the prefork MPM, configured with Apache's defaults until
// Configure is called.
func New() mpm.MPM { return newPolicy() }

func newPolicy() *policy.Policy { return policy.New("prefork", policy.ParsePrefork) }
