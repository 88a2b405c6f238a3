package policy

import (
	"fmt"

	"github.com/phasedhq/phased/sdk/mpm"
)

// MaxSpawnRate is the most children one maintenance tick spawns (Apache's
// MAX_SPAWN_RATE).
const MaxSpawnRate = 32

// HoldOffTicks is how many spawning ticks after a new generation add
// children at the current rate instead of doubling it.
const HoldOffTicks = 10

// Config is an MPM's reading of its settings, after Apache's clamps.
type Config struct {
	// Name is the MPM's name in messages ("worker").
	Name string
	// Model is the child model.
	Model mpm.Model
	// ThreadsPerChild is the slots per child; 1 for prefork.
	ThreadsPerChild int
	// ServerLimit is the most children of one generation, retiring ones
	// included, that may exist at once (Apache's ap_daemons_limit; for
	// event, server_limit, the scoreboard's size).
	ServerLimit int
	// ActiveLimit is the most children that are not retiring (Apache
	// event's active_daemons_limit); equal to ServerLimit for worker and
	// prefork.
	ActiveLimit int
	// StartServers is how many children a generation starts with.
	StartServers int
	// MinSpare and MaxSpare bound the idle threads (worker, event) or idle
	// processes (prefork).
	MinSpare, MaxSpare int
	// MaxRequestWorkers is the most slots serving at once.
	MaxRequestWorkers int
	// KeepStartServers never lets the children fall below StartServers.
	KeepStartServers bool
	// MaxConnectionsPerChild and MaxConnectionsPerChildJitter are passed to
	// the master, which recycles children by connection count itself.
	MaxConnectionsPerChild, MaxConnectionsPerChildJitter int
	// MaxMemoryPerChild retires a child above that many bytes; 0 is no limit.
	MaxMemoryPerChild int64
	// AcceptMutex is "epoll", "flock" or "none".
	AcceptMutex string
	// AsyncRequestWorkerFactor is event's AsyncRequestWorkerFactor; 0 for
	// the others.
	AsyncRequestWorkerFactor float64
	// Notes are the clamps applied, worded as Apache words them.
	Notes []string
}

// Response is the ConfigureResponse for c.
func (c *Config) Response() *mpm.ConfigureResponse {
	return &mpm.ConfigureResponse{
		Model:                        c.Model,
		ThreadsPerChild:              c.ThreadsPerChild,
		ServerLimit:                  c.ServerLimit,
		StartServers:                 c.StartServers,
		MaxRequestWorkers:            c.MaxRequestWorkers,
		MaxConnectionsPerChild:       c.MaxConnectionsPerChild,
		MaxConnectionsPerChildJitter: c.MaxConnectionsPerChildJitter,
		MaxMemoryPerChild:            c.MaxMemoryPerChild,
		AcceptMutex:                  c.AcceptMutex,
		Notes:                        append([]string(nil), c.Notes...),
	}
}

// ThreadedSpec describes a threaded MPM (worker or event): its name, model,
// compile-time limits and whether it reads event's extra keys.
type ThreadedSpec struct {
	Name  string
	Model mpm.Model
	// MaxServerLimit and MaxThreadLimit are Apache's MAX_SERVER_LIMIT and
	// MAX_THREAD_LIMIT for the MPM.
	MaxServerLimit, MaxThreadLimit int
	// Event selects event's rules: server_limit is the scoreboard's size
	// and max_request_workers / threads_per_child caps the active children
	// only; async_request_worker_factor is accepted.
	Event bool
}

// Apache's compiled-in defaults for the threaded MPMs.
const (
	defaultStartDaemons     = 3
	defaultMinFreeDaemons   = 3
	defaultMaxFreeDaemons   = 10
	defaultThreadsPerChild  = 25
	defaultThreadedSrvLimit = 16
	defaultThreadLimit      = 64
)

// extras reads phased's keys common to every built-in MPM.
func extras(r *reader, c *Config, defaultMutex string) error {
	var err error
	if c.KeepStartServers, err = r.bool("keep_start_servers", false); err != nil {
		return err
	}
	if c.MaxConnectionsPerChild, err = r.nonNegInt("max_connections_per_child", 0); err != nil {
		return err
	}
	if c.MaxConnectionsPerChildJitter, err = r.nonNegInt("max_connections_per_child_jitter", 0); err != nil {
		return err
	}
	if c.MaxMemoryPerChild, err = r.bytes("max_memory_per_child", 0); err != nil {
		return err
	}
	if c.AcceptMutex, err = r.choice("accept_mutex", defaultMutex, "epoll", "flock", "none"); err != nil {
		return err
	}
	return nil
}

// ParseThreaded reads a worker or event `mpm:` section with Apache's
// defaults and applies worker_check_config's (event_check_config's) clamps,
// then the ones Apache applies when it starts running (start_servers above
// the process limit, max_spare_threads too close to min_spare_threads).
func ParseThreaded(spec ThreadedSpec, settings map[string]any) (*Config, error) {
	r := newReader(spec.Name, settings)
	c := &Config{Name: spec.Name, Model: spec.Model, AsyncRequestWorkerFactor: 0}
	var err error
	var serverLimit, threadLimit, maxWorkers int
	if c.StartServers, err = r.int("start_servers", defaultStartDaemons); err != nil {
		return nil, err
	}
	if serverLimit, err = r.int("server_limit", defaultThreadedSrvLimit); err != nil {
		return nil, err
	}
	if threadLimit, err = r.int("thread_limit", defaultThreadLimit); err != nil {
		return nil, err
	}
	if c.ThreadsPerChild, err = r.int("threads_per_child", defaultThreadsPerChild); err != nil {
		return nil, err
	}
	if c.MinSpare, err = r.int("min_spare_threads", defaultMinFreeDaemons*defaultThreadsPerChild); err != nil {
		return nil, err
	}
	if c.MaxSpare, err = r.int("max_spare_threads", defaultMaxFreeDaemons*defaultThreadsPerChild); err != nil {
		return nil, err
	}
	// Apache's default is ServerLimit * ThreadsPerChild of the defaults.
	if maxWorkers, err = r.int("max_request_workers", defaultThreadedSrvLimit*defaultThreadsPerChild, "max_clients"); err != nil {
		return nil, err
	}
	if spec.Event {
		if c.AsyncRequestWorkerFactor, err = r.positiveFloat("async_request_worker_factor", 2); err != nil {
			return nil, err
		}
	}
	if err := extras(r, c, "none"); err != nil {
		return nil, err
	}
	if err := r.unknown(); err != nil {
		return nil, err
	}

	note := func(format string, a ...any) { c.Notes = append(c.Notes, fmt.Sprintf(format, a...)) }

	if serverLimit > spec.MaxServerLimit {
		note("server_limit of %d exceeds compile-time limit of %d servers, decreasing to %d", serverLimit, spec.MaxServerLimit, spec.MaxServerLimit)
		serverLimit = spec.MaxServerLimit
	} else if serverLimit < 1 {
		note("server_limit of %d not allowed, increasing to 1", serverLimit)
		serverLimit = 1
	}
	if threadLimit > spec.MaxThreadLimit {
		note("thread_limit of %d exceeds compile-time limit of %d threads, decreasing to %d", threadLimit, spec.MaxThreadLimit, spec.MaxThreadLimit)
		threadLimit = spec.MaxThreadLimit
	} else if threadLimit < 1 {
		note("thread_limit of %d not allowed, increasing to 1", threadLimit)
		threadLimit = 1
	}
	tpc := c.ThreadsPerChild
	if tpc > threadLimit {
		note("threads_per_child of %d exceeds thread_limit of %d threads, decreasing to %d; to increase, please see the thread_limit setting", tpc, threadLimit, threadLimit)
		tpc = threadLimit
	} else if tpc < 1 {
		note("threads_per_child of %d not allowed, increasing to 1", tpc)
		tpc = 1
	}
	c.ThreadsPerChild = tpc
	if maxWorkers < tpc {
		note("max_request_workers of %d is less than threads_per_child of %d, increasing to %d; max_request_workers must be at least as large as the number of threads in a single server", maxWorkers, tpc, tpc)
		maxWorkers = tpc
	}
	daemons := maxWorkers / tpc
	if maxWorkers%tpc != 0 {
		rounded := daemons * tpc
		note("max_request_workers of %d is not an integer multiple of threads_per_child of %d, decreasing to nearest multiple %d, for a maximum of %d servers", maxWorkers, tpc, rounded, daemons)
		maxWorkers = rounded
	}
	if daemons > serverLimit {
		note("max_request_workers of %d would require %d servers and would exceed server_limit of %d, decreasing to %d; to increase, please see the server_limit setting", maxWorkers, daemons, serverLimit, serverLimit*tpc)
		daemons = serverLimit
		maxWorkers = serverLimit * tpc
	}
	c.MaxRequestWorkers = maxWorkers
	c.ActiveLimit = daemons
	if spec.Event {
		// Event sizes the scoreboard by server_limit: slots beyond
		// max_request_workers / threads_per_child hold children that are
		// still draining.
		c.ServerLimit = serverLimit
	} else {
		c.ServerLimit = daemons
	}
	if c.StartServers < 1 {
		note("start_servers of %d not allowed, increasing to 1", c.StartServers)
		c.StartServers = 1
	}
	if c.MinSpare < 1 {
		note("min_spare_threads of %d not allowed, increasing to 1 to avoid almost certain server failure", c.MinSpare)
		c.MinSpare = 1
	}
	// worker_run / event_run with one listener bucket.
	if c.StartServers > c.ActiveLimit {
		note("start_servers of %d exceeds the maximum of %d servers, decreasing to %d", c.StartServers, c.ActiveLimit, c.ActiveLimit)
		c.StartServers = c.ActiveLimit
	}
	if least := c.MinSpare + tpc + 1; c.MaxSpare < least {
		note("max_spare_threads of %d is less than min_spare_threads + threads_per_child + 1, increasing to %d", c.MaxSpare, least)
		c.MaxSpare = least
	}
	return c, nil
}

// Apache prefork's compiled-in defaults and limit.
const (
	preforkStartDaemons   = 5
	preforkMinFreeDaemons = 5
	preforkMaxFreeDaemons = 10
	preforkServerLimit    = 256
	preforkMaxServerLimit = 200000
)

// ParsePrefork reads a prefork `mpm:` section with Apache's defaults and
// applies prefork_check_config's clamps, then prefork_run's.
func ParsePrefork(settings map[string]any) (*Config, error) {
	r := newReader("prefork", settings)
	c := &Config{Name: "prefork", Model: mpm.Prefork, ThreadsPerChild: 1}
	var err error
	var serverLimit, daemons int
	if c.StartServers, err = r.int("start_servers", preforkStartDaemons); err != nil {
		return nil, err
	}
	if c.MinSpare, err = r.int("min_spare_servers", preforkMinFreeDaemons); err != nil {
		return nil, err
	}
	if c.MaxSpare, err = r.int("max_spare_servers", preforkMaxFreeDaemons); err != nil {
		return nil, err
	}
	if serverLimit, err = r.int("server_limit", preforkServerLimit); err != nil {
		return nil, err
	}
	if daemons, err = r.int("max_request_workers", preforkServerLimit, "max_clients"); err != nil {
		return nil, err
	}
	if err := extras(r, c, "epoll"); err != nil {
		return nil, err
	}
	if err := r.unknown(); err != nil {
		return nil, err
	}

	note := func(format string, a ...any) { c.Notes = append(c.Notes, fmt.Sprintf(format, a...)) }

	if serverLimit > preforkMaxServerLimit {
		note("server_limit of %d exceeds compile-time limit of %d servers, decreasing to %d", serverLimit, preforkMaxServerLimit, preforkMaxServerLimit)
		serverLimit = preforkMaxServerLimit
	} else if serverLimit < 1 {
		note("server_limit of %d not allowed, increasing to 1", serverLimit)
		serverLimit = 1
	}
	if daemons > serverLimit {
		note("max_request_workers of %d exceeds server_limit value of %d servers, decreasing max_request_workers to %d; to increase, please see the server_limit setting", daemons, serverLimit, serverLimit)
		daemons = serverLimit
	} else if daemons < 1 {
		note("max_request_workers of %d not allowed, increasing to 1", daemons)
		daemons = 1
	}
	c.ServerLimit, c.ActiveLimit, c.MaxRequestWorkers = daemons, daemons, daemons
	if c.StartServers < 1 {
		note("start_servers of %d not allowed, increasing to 1", c.StartServers)
		c.StartServers = 1
	}
	if c.MinSpare < 1 {
		note("min_spare_servers of %d not allowed, increasing to 1 to avoid almost certain server failure", c.MinSpare)
		c.MinSpare = 1
	}
	// prefork_run with one listener bucket.
	if c.StartServers > daemons {
		note("start_servers of %d exceeds the maximum of %d servers, decreasing to %d", c.StartServers, daemons, daemons)
		c.StartServers = daemons
	}
	if least := c.MinSpare + 1; c.MaxSpare < least {
		note("max_spare_servers of %d is less than min_spare_servers + 1, increasing to %d", c.MaxSpare, least)
		c.MaxSpare = least
	}
	return c, nil
}
