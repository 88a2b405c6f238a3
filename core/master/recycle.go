package master

import (
	"fmt"
	"time"

	"github.com/phasedhq/phased/core/control"
	"github.com/phasedhq/phased/internal/scoreboard"
)

// recycling is a rolling restart of the current generation (`phased -k
// recycle`): one child at a time, its replacement is started and must be
// ready before the child is told to drain. No configuration is read.
type recycling struct {
	gen    *generation
	queue  []int // pids still to retire, in slot order
	target int   // the child being handed off to its replacement; 0 = none
	alone  bool  // target had no replacement: wait until it has exited
	done   int
	reply  func(control.Response)
}

func (m *Master) startRecycle(reply func(control.Response)) {
	if m.recycle != nil {
		reply(control.Response{Error: "a recycle is already in progress"})
		return
	}
	if m.pending != nil || m.upgrade != nil {
		reply(control.Response{Error: "a restart or binary upgrade is in progress"})
		return
	}
	r := &recycling{gen: m.current, reply: reply}
	for _, c := range m.status().Children {
		if c.Generation == m.current.num && c.State != "retiring" {
			r.queue = append(r.queue, c.PID)
		}
	}
	m.recycle = r
	m.log.Info("recycling the generation's children one at a time", "generation", r.gen.num, "children", len(r.queue))
	m.stepRecycle()
}

// stepRecycle moves on a rolling restart; it runs after every event. Each
// child in turn is handed off to its replacement (handoff.go); the next
// starts once the previous one was told to drain, or has exited when no
// replacement could start (no free slot, a crash back-off).
func (m *Master) stepRecycle() {
	r := m.recycle
	if r == nil {
		return
	}
	if m.stop != nil || r.gen.draining {
		m.recycle = nil
		r.reply(control.Response{Error: "recycle interrupted: the generation is being replaced or phased is stopping"})
		return
	}
	now := time.Now()
	for {
		if r.target != 0 {
			if k, alive := m.kids[r.target]; alive && (!k.handedOff || r.alone) {
				return // its replacement is not ready yet, or it must go first
			}
			r.target = 0
		}
		if len(r.queue) == 0 {
			m.recycle = nil
			m.log.Info("recycle done", "generation", r.gen.num, "children", r.done)
			r.reply(control.Response{OK: true, Message: fmt.Sprintf("%d children of generation %d recycled", r.done, r.gen.num)})
			return
		}
		pid := r.queue[0]
		r.queue = r.queue[1:]
		k, alive := m.kids[pid]
		if !alive || k.retiring {
			continue
		}
		successor := 0
		if !now.Before(r.gen.nextSpawn) {
			successor = m.spawnOne(r.gen)
		}
		if successor == 0 {
			r.gen.respawn++ // maintain starts it once the slot is free
		}
		r.target, r.alone, r.done = pid, successor == 0, r.done+1
		m.counters.Add(scoreboard.RecycledCommand, 1)
		m.log.Info("recycling a child", "pid", pid, "generation", r.gen.num, "slot", k.slot, "replacement", successor)
		m.handOff(k, successor, now)
	}
}
