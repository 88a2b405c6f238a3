// Package phase is phased's one vocabulary of lifecycle phases, shared by
// the phase engine (phases/), the hook plugin SDK (sdk/hook) and the child
// runtime, and the environment an exec hook sees.
//
// A master runs configure, open-logs and post-config on every
// configuration pass and shutdown once as it stops; each child runs
// child-init before it accepts and child-exit after its last request.
package phase

import (
	"fmt"
	"strconv"
	"strings"
)

// Phase is a lifecycle phase.
type Phase string

// The phases, in the order a master and its children meet them.
const (
	Configure  Phase = "configure"
	OpenLogs   Phase = "open-logs"
	PostConfig Phase = "post-config"
	ChildInit  Phase = "child-init"
	ChildExit  Phase = "child-exit"
	Shutdown   Phase = "shutdown"
)

// All returns every phase in lifecycle order.
func All() []Phase {
	return []Phase{Configure, OpenLogs, PostConfig, ChildInit, ChildExit, Shutdown}
}

// Master returns the phases that run in the master, in pass order: the
// phases a hook plugin can implement.
func Master() []Phase { return []Phase{Configure, OpenLogs, PostConfig, Shutdown} }

// InChild reports whether p runs in children rather than the master.
func (p Phase) InChild() bool { return p == ChildInit || p == ChildExit }

// Valid reports whether p is one of the phases.
func (p Phase) Valid() bool {
	for _, q := range All() {
		if p == q {
			return true
		}
	}
	return false
}

// Parse returns the phase named s, or an error listing the phases.
func Parse(s string) (Phase, error) {
	if p := Phase(s); p.Valid() {
		return p, nil
	}
	names := make([]string, 0, 6)
	for _, p := range All() {
		names = append(names, string(p))
	}
	return "", fmt.Errorf("unknown phase %q (%s)", s, strings.Join(names, ", "))
}

// Info is what every hook knows of the moment it runs in.
type Info struct {
	// Phase is the phase running.
	Phase Phase
	// Pass is the configuration pass: 1 and 2 at start (the double start),
	// then one more for every restart; in children, the pass that made
	// their generation.
	Pass int
	// Generation is the generation of children the pass prepares (1 at
	// start, also during pass 1), or the child's own.
	Generation int
	// DryRun reports whether nothing will serve after the phase (`phased -t`).
	DryRun bool
	// Slot is the child's slot in child phases; -1 in the master.
	Slot int
	// ConfigPath is the effective configuration as JSON, for exec hooks.
	ConfigPath string
}

// Env returns the PHASED_* variables an exec hook gets for i: PHASED_PHASE,
// PHASED_PASS, PHASED_GENERATION, PHASED_DRY_RUN (0 or 1), PHASED_CONFIG
// and, in a child, PHASED_SLOT.
func (i Info) Env() []string {
	dry := "0"
	if i.DryRun {
		dry = "1"
	}
	env := []string{
		"PHASED_PHASE=" + string(i.Phase),
		"PHASED_PASS=" + strconv.Itoa(i.Pass),
		"PHASED_GENERATION=" + strconv.Itoa(i.Generation),
		"PHASED_DRY_RUN=" + dry,
		"PHASED_CONFIG=" + i.ConfigPath,
	}
	if i.Slot >= 0 {
		env = append(env, "PHASED_SLOT="+strconv.Itoa(i.Slot))
	}
	return env
}

// HookVars are the names Info.Env sets.
var hookVars = []string{"PHASED_PHASE", "PHASED_PASS", "PHASED_GENERATION", "PHASED_DRY_RUN", "PHASED_CONFIG", "PHASED_SLOT"}

// HookVar reports whether name is one of the variables Info.Env sets.
func HookVar(name string) bool {
	for _, v := range hookVars {
		if name == v {
			return true
		}
	}
	return false
}
