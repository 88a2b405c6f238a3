package master

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/phasedhq/phased/internal/cpuset"
	"github.com/phasedhq/phased/internal/procfs"
	"github.com/phasedhq/phased/internal/scoreboard"
)

// Status is what `phased status` shows.
type Status struct {
	PID        int      `json:"pid"`
	Uptime     string   `json:"uptime"`
	Generation int      `json:"generation"`
	Listen     []string `json:"listen"`
	MPM        string   `json:"mpm"`
	Stopping   bool     `json:"stopping"`
	// Scoreboard is the current generation's slots in Apache's letters.
	Scoreboard string `json:"scoreboard"`
	Idle       int    `json:"idle_workers"`
	Busy       int    `json:"busy_workers"`
	// Crashes counts the current generation's early child deaths in a row;
	// while it is above 1 the master backs off until BackoffUntil.
	Crashes      int           `json:"crashes"`
	LastExit     string        `json:"last_exit,omitempty"`
	BackoffUntil string        `json:"backoff_until,omitempty"`
	Children     []ChildStatus `json:"children"`
}

// ChildStatus is one child in a Status.
type ChildStatus struct {
	PID        int    `json:"pid"`
	Generation int    `json:"generation"`
	Slot       int    `json:"slot"`
	State      string `json:"state"`
	Uptime     string `json:"uptime"`
	// Busy is how many of its worker slots hold a request or a
	// connection; Requests and Bytes are what this child served since it
	// started (Apache's "this child" count).
	Busy     int    `json:"busy"`
	Requests uint64 `json:"requests"`
	Bytes    uint64 `json:"bytes"`
	// SlotRequests and SlotBytes are what its slot served in this
	// generation, earlier children in the slot included (Apache's "this
	// slot" count, what the scoreboard keeps).
	SlotRequests uint64 `json:"slot_requests"`
	SlotBytes    uint64 `json:"slot_bytes"`
	// AppPID is the app server the child owns (app.type http), 0 when it
	// owns none; AppMemory is that app server's memory with its own
	// processes (PSS, or RSS), in bytes.
	AppPID    int   `json:"app_pid,omitempty"`
	AppMemory int64 `json:"app_memory_bytes,omitempty"`
	// CPUs is the CPU list the child and its processes are bound to
	// (worker_cpu_affinity), "" when unbound.
	CPUs string `json:"cpus,omitempty"`
}

func (m *Master) status() Status {
	s := Status{PID: os.Getpid(), Uptime: time.Since(m.started).Round(time.Second).String(),
		Listen: m.boundAddrs(), MPM: MPMName(m.cfg.MPM.Name, nil), Stopping: m.sv.Stopping()}
	if cur, ok := m.sv.Current(); ok {
		s.Generation, s.Crashes, s.LastExit = cur.Num, cur.Crashes, cur.LastExit
		if cur.Crashes > 0 && time.Now().Before(cur.NextSpawn) {
			s.BackoffUntil = cur.NextSpawn.Format(time.RFC3339)
		}
		if g := m.gens[cur.Num]; g != nil {
			s.MPM = g.mpmName()
			snap := g.board.Snapshot()
			sum := snap.Summary()
			s.Scoreboard, s.Idle, s.Busy = snap.Letters(), sum.Idle, sum.Busy
		}
	}
	for _, k := range m.sv.Children() {
		state := "starting"
		switch {
		case k.Retiring:
			state = "retiring"
		case k.Ready:
			state = "ready"
		}
		c := ChildStatus{PID: k.PID, Generation: k.Gen, Slot: k.Slot, State: state,
			Uptime: time.Since(k.Started).Round(time.Second).String()}
		g := m.gens[k.Gen]
		if g != nil {
			if set, ok := g.childCPUs(k.Slot); ok {
				c.CPUs = cpuset.Format(set)
			}
		}
		if g != nil && k.Slot < g.board.Procs() {
			if p := g.board.Proc(k.Slot); p.PID() == k.PID {
				c.AppPID = p.AppPID()
			}
			if c.AppPID != 0 {
				c.AppMemory = procfs.TreeMemory(c.AppPID)
			}
			c.SlotRequests, c.SlotBytes, c.Busy = slotTotals(g, k.Slot)
			c.Requests, c.Bytes = c.SlotRequests, c.SlotBytes
			if p := m.procs[k.ID]; p != nil {
				c.Requests -= min(p.baseRequests, c.Requests)
				c.Bytes -= min(p.baseBytes, c.Bytes)
			}
		}
		s.Children = append(s.Children, c)
	}
	s.Children = append(s.Children, m.predecessorChildren()...)
	sort.SliceStable(s.Children, func(i, j int) bool {
		a, b := s.Children[i], s.Children[j]
		if a.Generation != b.Generation {
			return a.Generation < b.Generation
		}
		return a.Slot < b.Slot
	})
	return s
}

// slotTotals adds up what slot's workers in g's scoreboard served, and
// counts those busy.
func slotTotals(g *generation, slot int) (requests, bytes uint64, busy int) {
	for j := range min(g.limits.ThreadsPerChild, g.board.ThreadsPerProc()) {
		w := g.board.Worker(slot, j).Snapshot()
		requests += w.Requests
		bytes += w.Bytes
		if w.State != scoreboard.Idle && w.State != scoreboard.Dead && w.State != scoreboard.Starting {
			busy++
		}
	}
	return requests, bytes, busy
}

// WriteStatus prints s as a table.
func WriteStatus(w io.Writer, s Status) {
	fmt.Fprintf(w, "phased (pid %d) up %s, generation %d, mpm %s, listening on %s\n",
		s.PID, s.Uptime, s.Generation, s.MPM, strings.Join(s.Listen, ", "))
	if s.Stopping {
		fmt.Fprintln(w, "stopping")
	}
	fmt.Fprintf(w, "%d busy, %d idle workers\nscoreboard: %s\n", s.Busy, s.Idle, s.Scoreboard)
	if s.BackoffUntil != "" && s.Crashes > 0 {
		fmt.Fprintf(w, "children keep dying (%d in a row, last: %s); next start at %s\n", s.Crashes, s.LastExit, s.BackoffUntil)
	}
	apps := slices.ContainsFunc(s.Children, func(c ChildStatus) bool { return c.AppPID != 0 })
	bound := slices.ContainsFunc(s.Children, func(c ChildStatus) bool { return c.CPUs != "" })
	head := fmt.Sprintf("%-8s %-4s %-4s %-9s %-8s %-5s %-9s %-11s", "PID", "GEN", "SLOT", "STATE", "UPTIME", "BUSY", "REQUESTS", "BYTES")
	if bound {
		head += fmt.Sprintf(" %-8s", "CPUS")
	}
	if apps {
		head += fmt.Sprintf(" %-8s %s", "APP PID", "APP MEM")
	}
	fmt.Fprintln(w, strings.TrimRight(head, " "))
	for _, c := range s.Children {
		line := fmt.Sprintf("%-8d %-4d %-4d %-9s %-8s %-5d %-9d %-11d", c.PID, c.Generation, c.Slot, c.State, c.Uptime, c.Busy, c.Requests, c.Bytes)
		if bound {
			line += fmt.Sprintf(" %-8s", cmp.Or(c.CPUs, "-"))
		}
		if apps && c.AppPID != 0 {
			line += fmt.Sprintf(" %-8d %.1fM", c.AppPID, float64(c.AppMemory)/(1<<20))
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}

// publishChildren tells /metrics how many children are starting, ready and
// retiring, across generations.
func (m *Master) publishChildren() {
	var starting, ready, retiring int
	var gens scoreboard.ChildTally
	for _, k := range m.sv.Children() {
		gens.Add(k.Gen, k.Ready, k.Retiring)
		switch {
		case k.Retiring:
			retiring++
		case k.Ready:
			ready++
		default:
			starting++
		}
	}
	m.counters.SetChildren(starting, ready, retiring)
	m.counters.SetGenerations(&gens)
}

// predecessorChildren lists the old master's children that are still
// there (a binary upgrade's new master shows them in its status), and
// forgets those that are gone.
func (m *Master) predecessorChildren() []ChildStatus {
	p := m.opts.Predecessor
	if p == nil {
		return nil
	}
	keep := p.Children[:0]
	for _, c := range p.Children {
		if procfs.Alive(c.PID) {
			c.State = "draining (old master " + strconv.Itoa(p.PID) + ")"
			keep = append(keep, c)
		}
	}
	p.Children = keep
	return keep
}

var jsonMarshal = json.Marshal
