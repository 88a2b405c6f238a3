package hook

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/phasedhq/phased/internal/phase"
)

// Phase is a lifecycle phase; a hook plugin implements the master-side ones
// below. It is the same vocabulary phased's phase engine and children use.
type Phase = phase.Phase

// The phases a hook plugin can implement, in the order a pass runs them
// (shutdown runs once, on stop).
const (
	PhaseConfigure  = phase.Configure
	PhaseOpenLogs   = phase.OpenLogs
	PhasePostConfig = phase.PostConfig
	PhaseShutdown   = phase.Shutdown
)

// Phases returns the phases a hook plugin can implement, in pass order.
func Phases() []Phase { return phase.Master() }

// Hook is a hook plugin. Describe tells the master which phases to run it
// at; the phases themselves are the optional interfaces Configurer,
// LogOpener, PostConfigurer and ShutdownHandler, and child events are
// ChildWatcher.
type Hook interface {
	// Describe returns what the plugin implements. The master calls it
	// once after it starts the plugin.
	Describe(ctx context.Context, req *DescribeRequest) (*DescribeResponse, error)
}

// Configurer is a Hook that runs at the configure phase.
type Configurer interface {
	// Configure validates (or extends) the configuration. Errors about
	// particular keys go in ConfigureResponse.Errors, or are returned as
	// ConfigErrors; any other error fails the phase.
	Configure(ctx context.Context, req *PhaseRequest) (*ConfigureResponse, error)
}

// LogOpener is a Hook that runs at the open-logs phase.
type LogOpener interface {
	// OpenLogs opens the plugin's log files, while the master is still
	// privileged.
	OpenLogs(ctx context.Context, req *PhaseRequest) (*PhaseResponse, error)
}

// PostConfigurer is a Hook that runs at the post-config phase.
type PostConfigurer interface {
	// PostConfig does one-time master work once the configuration is
	// final: migrations, cache warm-up.
	PostConfig(ctx context.Context, req *PhaseRequest) (*PhaseResponse, error)
}

// ShutdownHandler is a Hook that runs at the shutdown phase.
type ShutdownHandler interface {
	// Shutdown runs once, when the master stops: flush, deregister.
	Shutdown(ctx context.Context, req *PhaseRequest) (*PhaseResponse, error)
}

// ChildWatcher is a Hook that is told when the master's children start and
// exit (plugin protocol 2). A returned error is logged by the master; it
// does not affect the child.
type ChildWatcher interface {
	// ChildSpawned is called after the master starts a child.
	ChildSpawned(ctx context.Context, req *ChildEventRequest) error
	// ChildExited is called after a child exits, with its status.
	ChildExited(ctx context.Context, req *ChildEventRequest) error
}

// DescribeRequest asks a plugin what it implements.
type DescribeRequest struct {
	// Protocol is the plugin protocol version the master negotiated with
	// the plugin: 1 (no child events), 2 (no settings) or 3.
	Protocol int
	// Settings are the hook entry's `settings:` (protocol 3), as YAML
	// decoded them: integers arrive as int, durations as strings like
	// "30s". Nil when the entry has none. Describe may check them and
	// return a *SettingError naming the key at fault: the master fails
	// the configuration pass, and `phased -t`, with hooks[i].settings.KEY.
	Settings map[string]any
}

// DescribeResponse is what a plugin implements.
type DescribeResponse struct {
	// Phases are the phases to run the plugin at. Each must have its
	// interface implemented, or the master's Describe call fails.
	Phases []Phase
	// ChildEvents reports whether the plugin wants child events; it needs
	// ChildWatcher. On the host side it is false under protocol 1.
	ChildEvents bool
	// Name is what the master calls the plugin in its log (protocol 3);
	// empty means the plugin file's base name.
	Name string
}

// Implemented returns the DescribeResponse of a value: each phase whose
// interface h implements, in pass order, and ChildEvents if h is a
// ChildWatcher.
func Implemented(h any) *DescribeResponse {
	r := &DescribeResponse{}
	for _, p := range Phases() {
		if implements(h, p) {
			r.Phases = append(r.Phases, p)
		}
	}
	_, r.ChildEvents = h.(ChildWatcher)
	return r
}

func implements(h any, p Phase) bool {
	var ok bool
	switch p {
	case PhaseConfigure:
		_, ok = h.(Configurer)
	case PhaseOpenLogs:
		_, ok = h.(LogOpener)
	case PhasePostConfig:
		_, ok = h.(PostConfigurer)
	case PhaseShutdown:
		_, ok = h.(ShutdownHandler)
	}
	return ok
}

// PhaseRequest is one run of a phase.
type PhaseRequest struct {
	// Phase is the phase being run.
	Phase Phase
	// Pass counts configuration passes: 1 and 2 at the double start, one
	// more for each graceful restart.
	Pass int
	// Generation is the generation the pass configures.
	Generation int
	// DryRun reports whether this is a dry run (`phased -t`): check, but
	// change nothing.
	DryRun bool
	// Slot is the child's scoreboard slot in child-scope phases, and -1 in
	// the master-side phases a hook plugin runs at.
	Slot int
	// ConfigJSON is the effective configuration as JSON.
	ConfigJSON json.RawMessage
	// Settings are the hook entry's `settings:` (protocol 3), as in
	// DescribeRequest: the plugin's own settings, read afresh on every
	// pass. A phase may return a *SettingError about one of them.
	Settings map[string]any
}

// PhaseResponse is the outcome of a phase that succeeded. It has no fields
// yet; it exists so that fields can be added.
type PhaseResponse struct{}

// ConfigureResponse is the outcome of the configure phase.
type ConfigureResponse struct {
	// Errors are errors about configuration keys; if there are any, the
	// phase fails with them as ConfigErrors.
	Errors []ConfigError
}

// ConfigError is a configure error about one configuration key.
type ConfigError struct {
	// Key is the key at fault, dotted: "hooks.warmup.url".
	Key string
	// Message says what is wrong with it.
	Message string
}

// Error returns "key: message".
func (e ConfigError) Error() string { return e.Key + ": " + e.Message }

// ConfigErrors are the configure phase's errors about configuration keys.
// A Configurer may return them as its error; on the host side, RunPhase
// returns them as its error, and errors.As finds them.
type ConfigErrors []ConfigError

// Error returns "configuration: " and each error, separated by "; ".
func (e ConfigErrors) Error() string {
	msgs := make([]string, len(e))
	for i, ce := range e {
		msgs[i] = ce.Error()
	}
	return fmt.Sprintf("configuration: %s", strings.Join(msgs, "; "))
}

// SettingError is an error about one of the hook entry's settings. A
// plugin returns it from Describe or a phase (wrapped or not); the master
// reports it as hooks[i].settings.KEY: MSG, naming the entry. On the host
// side errors.As finds it.
type SettingError struct {
	// Key is the setting at fault, as written under settings:.
	Key string
	// Msg says what is wrong with it.
	Msg string
}

// Error returns "settings.KEY: MSG".
func (e *SettingError) Error() string { return fmt.Sprintf("settings.%s: %s", e.Key, e.Msg) }

// ChildEventKind is what happened to a child.
type ChildEventKind string

// The child events.
const (
	ChildSpawned ChildEventKind = "spawned"
	ChildExited  ChildEventKind = "exited"
)

// ChildEventRequest tells a plugin that a child was spawned or exited.
type ChildEventRequest struct {
	// Kind is what happened.
	Kind ChildEventKind
	// PID is the child's process id.
	PID int
	// Slot is the child's scoreboard slot.
	Slot int
	// Generation is the generation the child belongs to.
	Generation int
	// Status is how the child exited, as the master's log says it: "exit
	// status 0", "exit status 3 (child-init failed)", "killed by signal
	// killed" (the signal's name as Go's syscall.Signal says it); empty for
	// ChildSpawned.
	Status string
}

// Client is the master's view of a hook plugin, dispensed by Plugin.
type Client interface {
	// Describe asks the plugin what it implements.
	Describe(ctx context.Context, req *DescribeRequest) (*DescribeResponse, error)
	// RunPhase runs one phase. A failed phase is an error with the
	// plugin's message; a configure that found errors about keys returns
	// them as ConfigErrors; a phase the plugin does not implement is an
	// error matching errors.ErrUnsupported.
	RunPhase(ctx context.Context, req *PhaseRequest) (*PhaseResponse, error)
	// ChildEvent tells the plugin about a child. Under plugin protocol 1
	// it returns an error matching errors.ErrUnsupported without calling
	// the plugin; a plugin that is no ChildWatcher answers with the same.
	ChildEvent(ctx context.Context, req *ChildEventRequest) error
}
