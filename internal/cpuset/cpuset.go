// Package cpuset is worker_cpu_affinity: which CPUs a child, and every
// process it starts (its app server, its hooks' programs), may run on.
//
// A child in front of an app hands each request to that app and takes
// its answer back: two wake-ups a request across a unix socket. Bound to
// one CPU (or one group of CPUs) together, the child and its app make
// those wake-ups on the CPU that is already running, with the request's
// bytes still in its cache, instead of an interrupt to another CPU and a
// cold cache there. nginx's worker_cpu_affinity binds its own workers
// only; the app behind it is one pool shared by every worker, so nginx
// cannot keep a request and its app process on one CPU, which phased, whose
// children each own their app, can.
//
// A child is bound from its first instruction, with no window where it or
// a thread it makes runs elsewhere: the master binds its own spawning
// thread to the child's CPUs just for the fork (Start), and a forked
// process, its threads and the processes it starts all inherit the mask.
package cpuset

import (
	"fmt"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Set is a set of CPUs, by number.
type Set = unix.CPUSet

// Spec is a reading of worker_cpu_affinity.
type Spec struct {
	auto bool
	sets []Set // one per child slot, in turn
}

// None is the Spec that binds nothing: each child runs where the
// master may.
var None = Spec{}

// Parse reads a worker_cpu_affinity value: "none" (or empty), "auto", or
// one CPU list per child slot separated by spaces, each in taskset -c's
// form ("0-3,8"), taken in turn by the slots ("0 1" puts slot 0, 2, 4 ...
// on CPU 0 and the odd slots on CPU 1). Every CPU named must be one of
// allowed, the CPUs phased may run on.
func Parse(s string, allowed Set) (Spec, error) {
	switch s = strings.TrimSpace(s); s {
	case "", "none":
		return None, nil
	case "auto":
		return Spec{auto: true}, nil
	}
	var spec Spec
	for _, field := range strings.Fields(s) {
		set, err := ParseList(field)
		if err != nil {
			return None, err
		}
		for _, cpu := range CPUs(set) {
			if !allowed.IsSet(cpu) {
				return None, fmt.Errorf("CPU %d is not one phased may run on (%s)", cpu, Format(allowed))
			}
		}
		spec.sets = append(spec.sets, set)
	}
	return spec, nil
}

// ParseList reads a CPU list in taskset -c's form: numbers and ranges
// separated by commas ("0-3,8").
func ParseList(s string) (Set, error) {
	var set Set
	bad := func(why string) (Set, error) {
		return Set{}, fmt.Errorf("%q is not a CPU list (%s; write CPUs as 0-3,8)", s, why)
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := cpuNumber(lo)
		if err != nil {
			return bad(err.Error())
		}
		b := a
		if isRange {
			if b, err = cpuNumber(hi); err != nil {
				return bad(err.Error())
			}
			if b < a {
				return bad(fmt.Sprintf("the range %s runs backwards", part))
			}
		}
		for cpu := a; cpu <= b; cpu++ {
			set.Set(cpu)
		}
	}
	return set, nil
}

// maxCPU is one more than the highest CPU number a Set holds.
const maxCPU = len(Set{}) * 64

func cpuNumber(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a CPU number", s)
	}
	if n >= maxCPU {
		return 0, fmt.Errorf("CPU %d is above %d", n, maxCPU-1)
	}
	return n, nil
}

// CPUs lists the CPUs of set in order.
func CPUs(set Set) []int {
	var cpus []int
	for cpu := range maxCPU {
		if set.IsSet(cpu) {
			cpus = append(cpus, cpu)
		}
	}
	return cpus
}

// Format writes set in taskset -c's form ("0-3,8").
func Format(set Set) string {
	var b strings.Builder
	cpus := CPUs(set)
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(cpus[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(cpus[j]))
		}
		i = j + 1
	}
	return b.String()
}

// Allowed is the set of CPUs the calling thread may run on: the
// process's, a container's cpuset included, since no thread of the
// master is bound but for a fork (Start).
func Allowed() (Set, error) {
	var set Set
	err := unix.SchedGetaffinity(0, &set)
	return set, err
}

// Binds says whether s binds children at all.
func (s Spec) Binds() bool { return s.auto || len(s.sets) > 0 }

// For is the CPUs the child in slot runs on, of allowed: with "auto", the
// CPUs are cut into groups of consecutive CPUs, as many as the generation
// starts children with (start) or as there are CPUs if fewer, and slot
// takes group slot mod groups, so that the children a generation starts
// with share every CPU between them and a later one shares a group; with
// lists, list slot mod lists. ok is false when s binds nothing.
func (s Spec) For(slot, start int, allowed Set) (set Set, ok bool) {
	if slot < 0 {
		slot = 0
	}
	if len(s.sets) > 0 {
		return s.sets[slot%len(s.sets)], true
	}
	cpus := CPUs(allowed)
	if !s.auto || len(cpus) == 0 {
		return Set{}, false
	}
	groups := min(max(start, 1), len(cpus))
	g := slot % groups
	for _, cpu := range cpus[g*len(cpus)/groups : (g+1)*len(cpus)/groups] {
		set.Set(cpu)
	}
	return set, true
}

// Start starts cmd bound to set: the calling goroutine's thread is bound
// to set for the fork and back to what it was after, so that cmd's
// process is bound from its first instruction. The Go runtime makes no
// thread from a locked one (a locked thread may have a state of its own,
// as this one has), so no thread of the master's is born bound. (The
// thread is given back, not ended with a goroutine of its own: a child's
// Pdeathsig fires when the thread that forked it ends.)
func Start(cmd *exec.Cmd, set Set) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var was Set
	if err := unix.SchedGetaffinity(0, &was); err != nil {
		return fmt.Errorf("reading the master's CPU affinity: %w", err)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("binding the child to CPUs %s: %w", Format(set), err)
	}
	defer unix.SchedSetaffinity(0, &was) // the mask it just had: it cannot be refused
	return cmd.Start()
}
