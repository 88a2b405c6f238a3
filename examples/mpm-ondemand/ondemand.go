package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/phasedhq/phased/sdk/mpm"
)

// The settings' defaults, as PHP-FPM's.
const (
	DefaultMaxChildren        = 5
	DefaultProcessIdleTimeout = 10 * time.Second
	DefaultThreadsPerChild    = 1
)

// maxLimit bounds max_children and threads_per_child, as Apache worker's
// MAX_SERVER_LIMIT and MAX_THREAD_LIMIT do: the master sizes a scoreboard of
// max_children × threads_per_child slots.
const maxLimit = 20000

// Reasons carried by the actions Maintain returns.
const (
	// ReasonQueue: connections wait in a listener's accept queue and no
	// idle or starting slot will take them.
	ReasonQueue = "queue"
	// ReasonBusy: every child is busy.
	ReasonBusy = "busy"
	// ReasonIdle: the child stayed idle longer than process_idle_timeout.
	ReasonIdle = "process_idle_timeout"
)

// MsgReachedMax is logged, at warn, on every tick that wants a child but
// finds max_children already running, worded as PHP-FPM's warning.
const MsgReachedMax = "server reached max_children setting, consider raising it"

// Config is the reading of the `mpm:` settings.
type Config struct {
	// MaxChildren is the most children, retiring ones included
	// (max_children). Default 5.
	MaxChildren int
	// ProcessIdleTimeout is how long a child may stay fully idle before it
	// is retired (process_idle_timeout). Default 10s.
	ProcessIdleTimeout time.Duration
	// ThreadsPerChild is the connection slots of one child: 1 is the
	// prefork model, more the worker model (threads_per_child). Default 1.
	ThreadsPerChild int
	// MaxConnectionsPerChild makes the master recycle a child after that
	// many connections; 0, the default, means never
	// (max_connections_per_child).
	MaxConnectionsPerChild int
}

// DefaultConfig returns the configuration of no settings.
func DefaultConfig() Config {
	return Config{
		MaxChildren:        DefaultMaxChildren,
		ProcessIdleTimeout: DefaultProcessIdleTimeout,
		ThreadsPerChild:    DefaultThreadsPerChild,
	}
}

// Model returns the child model: prefork for one thread per child, worker
// for more.
func (c Config) Model() mpm.Model {
	if c.ThreadsPerChild == 1 {
		return mpm.Prefork
	}
	return mpm.Worker
}

// response is the ConfigureResponse for c.
func (c Config) response() *mpm.ConfigureResponse {
	mutex := "none"
	if c.Model() == mpm.Prefork {
		mutex = "epoll" // as the built-in prefork: no thundering herd, no lock
	}
	return &mpm.ConfigureResponse{
		Name:                   "ondemand",
		Model:                  c.Model(),
		ThreadsPerChild:        c.ThreadsPerChild,
		ServerLimit:            c.MaxChildren,
		StartServers:           0,
		MaxRequestWorkers:      c.MaxChildren * c.ThreadsPerChild,
		MaxConnectionsPerChild: c.MaxConnectionsPerChild,
		AcceptMutex:            mutex,
	}
}

// ParseSettings reads the `mpm:` settings (less name). An unknown key, a
// value of the wrong type or out of range is a *mpm.SettingError naming the
// key; with several unknown keys, the first in sorted order.
func ParseSettings(settings map[string]any) (Config, error) {
	c := DefaultConfig()
	known := []string{"max_children", "process_idle_timeout", "threads_per_child", "max_connections_per_child"}
	var unknown []string
	for k := range settings {
		if !contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return c, &mpm.SettingError{Key: unknown[0], Msg: fmt.Sprintf("unknown key for the ondemand MPM (known: %s)", strings.Join(known, ", "))}
	}
	var err error
	if c.MaxChildren, err = intSetting(settings, "max_children", c.MaxChildren, 1, maxLimit); err != nil {
		return c, err
	}
	if c.ThreadsPerChild, err = intSetting(settings, "threads_per_child", c.ThreadsPerChild, 1, maxLimit); err != nil {
		return c, err
	}
	if c.MaxConnectionsPerChild, err = intSetting(settings, "max_connections_per_child", c.MaxConnectionsPerChild, 0, math.MaxInt32); err != nil {
		return c, err
	}
	if c.ProcessIdleTimeout, err = durationSetting(settings, "process_idle_timeout", c.ProcessIdleTimeout); err != nil {
		return c, err
	}
	return c, nil
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// intSetting reads an integer in [lo, hi]: an int (as YAML and the plugin
// protocol give it), an integral float (as JSON gives it) or a decimal
// string.
func intSetting(settings map[string]any, key string, def, lo, hi int) (int, error) {
	v, ok := settings[key]
	if !ok {
		return def, nil
	}
	var n int
	switch x := v.(type) {
	case int:
		n = x
	case int64:
		n = int(x)
	case float64:
		if x != math.Trunc(x) || x < math.MinInt32 || x > math.MaxInt32 {
			return def, &mpm.SettingError{Key: key, Msg: fmt.Sprintf("want an integer, got %v", x)}
		}
		n = int(x)
	case string:
		i, err := strconv.Atoi(strings.TrimSpace(x))
		if err != nil {
			return def, &mpm.SettingError{Key: key, Msg: fmt.Sprintf("want an integer, got %q", x)}
		}
		n = i
	default:
		return def, &mpm.SettingError{Key: key, Msg: fmt.Sprintf("want an integer, got %T", v)}
	}
	if n < lo || n > hi {
		return def, &mpm.SettingError{Key: key, Msg: fmt.Sprintf("must be between %d and %d, got %d", lo, hi, n)}
	}
	return n, nil
}

// durationSetting reads a positive duration: a string such as "30s" or
// "2m", or an integer number of seconds (PHP-FPM's default unit).
func durationSetting(settings map[string]any, key string, def time.Duration) (time.Duration, error) {
	v, ok := settings[key]
	if !ok {
		return def, nil
	}
	var d time.Duration
	switch x := v.(type) {
	case string:
		p, err := time.ParseDuration(strings.TrimSpace(x))
		if err != nil {
			return def, &mpm.SettingError{Key: key, Msg: fmt.Sprintf("want a duration such as \"10s\", got %q", x)}
		}
		d = p
	case int:
		d = time.Duration(x) * time.Second
	default:
		return def, &mpm.SettingError{Key: key, Msg: fmt.Sprintf("want a duration such as \"10s\", got %T", v)}
	}
	if d <= 0 {
		return def, &mpm.SettingError{Key: key, Msg: fmt.Sprintf("must be positive, got %s", d)}
	}
	return d, nil
}

// OnDemand is the ondemand MPM. It keeps, between Maintain calls, when each
// child was last seen busy; it is safe for concurrent use.
type OnDemand struct {
	log *slog.Logger

	mu  sync.Mutex
	cfg Config
	// gens holds, per generation, what the last ticks saw of each child
	// by pid. Only the newest two generations are kept: during a graceful
	// restart the master ticks the old one until the new one serves.
	gens map[int]map[int]*seen
}

var _ mpm.MPM = (*OnDemand)(nil)

// seen is what the policy remembers of one child.
type seen struct {
	started     time.Time // tells a reused pid from the child we knew
	connections uint64    // the child's connection count at the last tick
	idleSince   time.Time // zero while the child is busy or starting
}

// New returns the ondemand MPM with the default configuration, logging
// through the plugin's logger (mpm.Logger).
func New() *OnDemand {
	return &OnDemand{log: mpm.Logger(), cfg: DefaultConfig(), gens: map[int]map[int]*seen{}}
}

// Configure reads the settings. An error leaves the previous configuration
// in force; the idle times survive a new configuration, as Apache's
// retained data survives a graceful restart.
func (o *OnDemand) Configure(ctx context.Context, req *mpm.ConfigureRequest) (*mpm.ConfigureResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg, err := ParseSettings(req.Settings)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	o.cfg = cfg
	o.mu.Unlock()
	o.log.Debug("configured", "model", string(cfg.Model()), "max_children", cfg.MaxChildren,
		"threads_per_child", cfg.ThreadsPerChild, "process_idle_timeout", cfg.ProcessIdleTimeout.String())
	return cfg.response(), nil
}

// Maintain runs one tick. In order:
//
//   - connections waiting in the accept queues beyond the slots that will
//     take them (idle slots of ready children, every slot of starting ones)
//     spawn enough children to serve them;
//   - otherwise, when every slot of every child is busy, one child is
//     spawned, so that the next connection does not wait for a spawn;
//   - otherwise, on a generation's first tick with no child, one child is
//     spawned: the master counts a start or a graceful restart as done, and
//     drains the old generation, only once the new one has a ready child.
//     It is retired like any other once it has stayed idle;
//   - never beyond max_children children, retiring ones included; a tick
//     that wants more logs MsgReachedMax at warn;
//   - a tick that spawns nothing retires the child that has been fully idle
//     the longest, if that is longer than process_idle_timeout, and unless
//     it is the last free slot while other children are busy. One a tick,
//     as PHP-FPM.
//
// # How idle time is measured
//
// The master's snapshot says, for each child, how many of its slots are
// idle or busy right now and how many connections it has accepted, but not
// when it last served. So the policy keeps, per child, the tick at which it
// was first seen fully idle (ready, no busy slot), and starts over whenever
// a tick sees it busy or sees its connection count grow (it served a
// connection between two ticks). A child seen for the first time, idle,
// that never accepted a connection counts as idle since it started. The
// idle time is therefore late by up to one tick (a second): a child is
// retired between process_idle_timeout and process_idle_timeout + 1s after
// its last connection ended.
func (o *OnDemand) Maintain(ctx context.Context, req *mpm.MaintainRequest) (*mpm.MaintainResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	cfg := o.cfg
	tpc := cfg.ThreadsPerChild
	children := o.track(req, now)
	resp := &mpm.MaintainResponse{}

	// spare counts the slots that will take a connection soon: idle slots
	// of ready children, and every slot of a starting child.
	var active []mpm.Child
	spare, busyChildren := 0, 0
	for _, ch := range req.Children {
		switch ch.State {
		case mpm.ChildRetiring:
			continue
		case mpm.ChildStarting:
			spare += tpc
		default:
			spare += min(max(ch.IdleSlots, 0), tpc)
			if ch.BusySlots > 0 {
				busyChildren++
			}
		}
		active = append(active, ch)
	}
	queued := 0
	for _, l := range req.Listeners {
		queued += max(l.QueueDepth, 0)
	}

	want, reason := 0, ReasonQueue
	switch {
	case queued > spare:
		want = (queued - spare + tpc - 1) / tpc
	case len(active) > 0 && spare == 0:
		want, reason = 1, ReasonBusy
	}
	if want > 0 {
		free := max(cfg.MaxChildren-len(req.Children), 0)
		n := min(want, free)
		if n > 0 {
			resp.Actions = append(resp.Actions, mpm.Action{Kind: mpm.Spawn, Count: n, Reason: reason})
		}
		if n < want {
			resp.ReachedMax = true
			resp.Logs = append(resp.Logs, mpm.Log{Level: mpm.LevelWarn, Message: MsgReachedMax, Attrs: map[string]string{
				"max_children": strconv.Itoa(cfg.MaxChildren),
				"children":     strconv.Itoa(len(req.Children)),
				"queued":       strconv.Itoa(queued),
			}})
		}
		return resp, nil
	}

	// Retire the child idle the longest, if beyond the timeout.
	victim := -1
	var longest time.Duration
	for i, ch := range active {
		s := children[ch.PID]
		if ch.State != mpm.ChildReady || s == nil || s.idleSince.IsZero() {
			continue
		}
		if idle := now.Sub(s.idleSince); idle > cfg.ProcessIdleTimeout && idle > longest {
			victim, longest = i, idle
		}
	}
	if victim < 0 {
		return resp, nil
	}
	ch := active[victim]
	if busyChildren > 0 && spare-min(max(ch.IdleSlots, 0), tpc) == 0 {
		// The last free slot while others serve: retiring it would have
		// the next tick spawn its replacement.
		return resp, nil
	}
	resp.Actions = append(resp.Actions, mpm.Action{Kind: mpm.Retire, Slot: ch.Slot, Reason: ReasonIdle})
	resp.Logs = append(resp.Logs, mpm.Log{Level: mpm.LevelInfo, Message: "child idle longer than process_idle_timeout, retiring it", Attrs: map[string]string{
		"slot": strconv.Itoa(ch.Slot),
		"pid":  strconv.Itoa(ch.PID),
		"idle": longest.Round(time.Second).String(),
	}})
	return resp, nil
}

// track updates what the policy knows of req's children and returns it by
// pid. The caller holds o.mu.
func (o *OnDemand) track(req *mpm.MaintainRequest, now time.Time) map[int]*seen {
	for g := range o.gens {
		if g < req.Generation-1 {
			delete(o.gens, g)
		}
	}
	old := o.gens[req.Generation]
	cur := make(map[int]*seen, len(req.Children))
	for _, ch := range req.Children {
		idle := ch.State == mpm.ChildReady && ch.BusySlots == 0
		s, ok := old[ch.PID]
		switch {
		case !ok || !s.started.Equal(ch.Started):
			s = &seen{started: ch.Started}
			if idle {
				s.idleSince = now
				if ch.Connections == 0 && !ch.Started.IsZero() && ch.Started.Before(now) {
					s.idleSince = ch.Started
				}
			}
		case !idle:
			s.idleSince = time.Time{}
		case s.idleSince.IsZero() || ch.Connections != s.connections:
			s.idleSince = now
		}
		s.connections = ch.Connections
		cur[ch.PID] = s
	}
	o.gens[req.Generation] = cur
	return cur
}
