package scoreboard

import (
	"os/exec"
	"reflect"
	"testing"
)

func newCounters(t *testing.T) *Counters {
	t.Helper()
	c, err := CreateCounters()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestGenerations: children are published per generation and life stage;
// a generation with no child left disappears; past MaxGenerations the
// children of further generations are dropped, never mixed into others.
func TestGenerations(t *testing.T) {
	c := newCounters(t)
	if g := c.Generations(); len(g) != 0 {
		t.Fatalf("fresh block: %v", g)
	}
	var tally ChildTally
	tally.Add(2, false, false) // starting
	tally.Add(1, true, true)   // retiring, ready or not
	tally.Add(2, true, false)  // ready
	tally.Add(2, true, false)
	tally.Add(1, true, true)
	c.SetGenerations(&tally)
	want := []GenerationChildren{{Generation: 2, Starting: 1, Ready: 2}, {Generation: 1, Retiring: 2}}
	if g := c.Generations(); !reflect.DeepEqual(g, want) {
		t.Fatalf("Generations = %+v, want %+v", g, want)
	}
	// The old generation is gone; its entry must not linger.
	tally = ChildTally{}
	tally.Add(2, true, false)
	c.SetGenerations(&tally)
	if g := c.Generations(); !reflect.DeepEqual(g, []GenerationChildren{{Generation: 2, Ready: 1}}) {
		t.Fatalf("after the old generation left: %+v", g)
	}
	tally = ChildTally{}
	for gen := 1; gen <= MaxGenerations+2; gen++ {
		tally.Add(gen, true, false)
	}
	c.SetGenerations(&tally)
	g := c.Generations()
	if len(g) != MaxGenerations || g[MaxGenerations-1].Generation != MaxGenerations || g[0].Ready != 1 {
		t.Fatalf("%d generations: %+v", MaxGenerations+2, g)
	}
	// A child sees what the master published.
	child, err := OpenCounters(c.File())
	if err != nil {
		t.Fatal(err)
	}
	defer child.Close()
	if !reflect.DeepEqual(child.Generations(), g) {
		t.Fatalf("through another mapping: %+v", child.Generations())
	}
}

// TestCountSelfRetire: a child's own retire counts as max_connections as
// many times as children reported reaching the limit, else as a signal.
func TestCountSelfRetire(t *testing.T) {
	c := newCounters(t)
	c.CountSelfRetire() // a SIGUSR1 by hand
	c.Add(MaxConnectionsReached, 1)
	c.Add(MaxConnectionsReached, 1)
	c.CountSelfRetire()
	c.CountSelfRetire()
	c.CountSelfRetire()
	if mc, sig := c.Get(RecycledMaxConnections), c.Get(RecycledSelf); mc != 2 || sig != 2 {
		t.Fatalf("max_connections %d, signal %d; want 2 and 2", mc, sig)
	}
}

// TestExitCounter classifies the exits of real processes.
func TestExitCounter(t *testing.T) {
	const childInit = 3
	for _, tt := range []struct {
		script string
		want   Counter
	}{
		{"kill -9 $$", ExitedSignal},
		{"kill -SEGV $$", ExitedSignal},
		{"exit 3", ExitedChildInit},
		{"exit 7", ExitedCrashed},
		{"exit 0", ExitedCrashed}, // unasked, even with status 0
	} {
		cmd := exec.Command("/bin/sh", "-c", tt.script)
		cmd.Run()
		if got := ExitCounter(cmd.ProcessState, childInit); got != tt.want {
			t.Errorf("%q: counter %d, want %d", tt.script, got, tt.want)
		}
	}
}

func TestRetireCounter(t *testing.T) {
	if RetireCounter(ReasonMemory) != RecycledMemory || RetireCounter("max_spare") != RetiredByMPM || RetireCounter("") != RetiredByMPM {
		t.Fatal("RetireCounter")
	}
}
