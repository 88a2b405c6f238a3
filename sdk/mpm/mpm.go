// Package mpm is the interface of a phased multi-processing module: the
// policy that decides how many children a master keeps, and when it spawns
// or retires them.
//
// An MPM is a policy over a child model. Configure reads the `mpm:` section of
// the configuration (Apache's directives in snake_case) and answers with the
// child model (how one child serves: prefork, worker or event) and the limits
// the master sizes its scoreboard by. Maintain is called once a second, as
// Apache's perform_idle_server_maintenance, with a snapshot of the current
// generation, and answers with actions the master carries out: spawn
// children, retire one gracefully, kill one.
//
// Every call is a request struct in and a response struct out, so fields can
// be added without breaking an MPM built against an older SDK. The built-in
// prefork, worker and event MPMs implement this interface in phased's own
// plugins/ tree; a third-party MPM implements it and serves it as a plugin
// with [Serve], logging through [Logger]. The master dispenses it through
// [Plugin], and [github.com/phasedhq/phased/sdk/sdktest.MPM] runs the same
// path in-process for a plugin's tests.
package mpm

import (
	"context"
	"fmt"
	"time"
)

// Model is how one child serves connections.
type Model string

// The child models.
const (
	// Prefork serves one connection at a time per process (Apache prefork).
	Prefork Model = "prefork"
	// Worker serves ThreadsPerChild connections per process, accepting only
	// while a slot is idle, so the kernel backlog is the only queue.
	Worker Model = "worker"
	// Event has ThreadsPerChild request slots per process; idle keep-alive
	// connections are parked without holding a slot.
	Event Model = "event"
)

// MPM is a process-model policy.
type MPM interface {
	// Configure validates settings and returns the child model and limits.
	// Errors name the offending key (see SettingError).
	Configure(ctx context.Context, req *ConfigureRequest) (*ConfigureResponse, error)
	// Maintain looks at the current generation and returns what to do.
	Maintain(ctx context.Context, req *MaintainRequest) (*MaintainResponse, error)
}

// ConfigureRequest carries the `mpm:` section, less its name.
type ConfigureRequest struct {
	// Settings are the keys as written, e.g. "start_servers": 2.
	Settings map[string]any
}

// ConfigureResponse is the MPM's reading of its settings.
type ConfigureResponse struct {
	// Model is the child model.
	Model Model
	// ThreadsPerChild is the number of connection (or request) slots in one
	// child; 1 for prefork.
	ThreadsPerChild int
	// ServerLimit is the most children one generation may have; the master
	// sizes each generation's scoreboard by it.
	ServerLimit int
	// StartServers is how many children to start with.
	StartServers int
	// MaxRequestWorkers is the most slots serving at once (Apache's
	// MaxClients).
	MaxRequestWorkers int
	// MaxConnectionsPerChild retires a child after that many connections;
	// 0 means never.
	MaxConnectionsPerChild int
	// MaxConnectionsPerChildJitter adds up to that many connections, chosen
	// per child, so children started together do not all retire together.
	MaxConnectionsPerChildJitter int
	// MaxMemoryPerChild retires a child whose memory (PSS, or RSS) exceeds
	// it, in bytes; 0 means no limit.
	MaxMemoryPerChild int64
	// AcceptMutex is how children share a listening socket: "epoll" (no
	// lock: each child waits in an epoll set of its own with
	// EPOLLEXCLUSIVE, and the kernel wakes one waiting child per
	// connection; a stopped or busy child is not waiting, so it holds
	// nobody up), "flock" (children take turns holding a lock, as
	// Apache's AcceptMutex flock; a holder that is stopped stops every
	// sibling from accepting, which the master logs) or "none" (Go's
	// netpoller: every child is woken for every connection).
	AcceptMutex string
	// Notes are adjustments the MPM made (clamps), which the master logs
	// as Apache logs its "WARNING: MaxRequestWorkers of ... " lines.
	Notes []string
	// Name is what the master calls the MPM in its log, its metrics'
	// labels, `phased status` and the status page's ServerMPM: a short
	// word such as "ondemand". Empty means the plugin file's base name
	// (a built-in MPM is called by its mpm.name).
	Name string
}

// ChildState is a child's life stage as the master sees it.
type ChildState string

// The child states.
const (
	ChildStarting ChildState = "starting" // spawned, not yet accepting
	ChildReady    ChildState = "ready"    // accepting
	ChildRetiring ChildState = "retiring" // draining; no longer counts
)

// Child is one child of the current generation in a MaintainRequest.
type Child struct {
	Slot  int
	PID   int
	State ChildState
	// IdleSlots and BusySlots count the child's scoreboard slots (threads)
	// by Apache's mod_status rules.
	IdleSlots, BusySlots int
	// Connections is how many connections the child has accepted since it
	// started. Between two ticks its growth is the child's accept rate.
	Connections uint64
	// MemoryBytes is the child's PSS (or RSS where PSS is not available),
	// measured only when the MPM's Configure set MaxMemoryPerChild; else 0.
	MemoryBytes int64
	// Started is when the child was spawned.
	Started time.Time
	// RecentConnections is what Connections was at MaintainRequest.Recent
	// (0 if the child was not running then): their difference is what the
	// child accepted in the last fraction of a second, a fresher rate than
	// the one between two ticks.
	RecentConnections uint64
}

// Listener is one listening socket in a MaintainRequest.
type Listener struct {
	Addr string
	// QueueDepth is the number of connections waiting in the kernel's
	// accept queue (TCP_INFO on the listening socket).
	QueueDepth int
}

// MaintainRequest is a snapshot of the current generation.
type MaintainRequest struct {
	// Now is the time of the tick.
	Now time.Time
	// Generation is the current generation.
	Generation int
	// TicksSinceRestart counts maintenance ticks since this generation
	// began (0 on its first tick).
	TicksSinceRestart int
	// Children are the current generation's children, in slot order.
	Children []Child
	// Listeners are the listening sockets.
	Listeners []Listener
	// Recent is when the children's RecentConnections were read, a
	// quarter of a second or so before Now; zero if they were not.
	Recent time.Time
}

// ActionKind is what an Action asks of the master.
type ActionKind string

// The actions.
const (
	// Spawn starts Count children in free slots.
	Spawn ActionKind = "spawn"
	// Retire asks the child in Slot to finish its requests and exit; its
	// replacement, if the policy wants one, is a Spawn.
	Retire ActionKind = "retire"
	// Kill ends the child in Slot at once.
	Kill ActionKind = "kill"
)

// Action is one thing the master should do.
type Action struct {
	Kind   ActionKind
	Count  int // Spawn
	Slot   int // Retire, Kill
	Reason string
}

// Level is the severity of a Log entry.
type Level string

// The levels the master relays.
const (
	LevelDebug  Level = "debug"
	LevelInfo   Level = "info"
	LevelNotice Level = "notice"
	LevelWarn   Level = "warn"
	LevelError  Level = "error"
)

// Log is a message the master writes to its error log for the MPM.
type Log struct {
	Level   Level
	Message string
	// Attrs are key/value pairs, e.g. {"spawning": "8"}.
	Attrs map[string]string
}

// MaintainResponse is what the policy decided.
type MaintainResponse struct {
	Actions []Action
	Logs    []Log
	// ReachedMax reports that this tick wanted more children than the
	// MPM's limit allows (PHP-FPM's "max children reached"); the master
	// counts it for the status page and metrics.
	ReachedMax bool
}

// SettingError is a Configure error about one setting.
type SettingError struct {
	Key string
	Msg string
}

func (e *SettingError) Error() string { return fmt.Sprintf("mpm.%s: %s", e.Key, e.Msg) }
