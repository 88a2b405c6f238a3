package phases

import (
	"container/heap"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Order positions of a hook inside its phase, as Apache's APR_HOOK_*
// constants. A lower position runs earlier; any other integer is a position
// too, so 5 runs after First and before Middle.
const (
	ReallyFirst = -10
	First       = 0
	Middle      = 10
	Last        = 20
	ReallyLast  = 30
)

// orderWords are the named positions, earliest first.
var orderWords = [...]struct {
	word string
	pos  int
}{
	{"really-first", ReallyFirst},
	{"first", First},
	{"middle", Middle},
	{"last", Last},
	{"really-last", ReallyLast},
}

// ParseOrder turns a config value into a position: "really-first", "first",
// "middle", "last" or "really-last" (in any case), or an integer such as "5"
// or "-20". Surrounding spaces are allowed, and "" means Middle. On error it
// returns 0 and an error that quotes s and lists the valid words.
func ParseOrder(s string) (int, error) {
	v := strings.TrimSpace(s)
	if v == "" {
		return Middle, nil
	}
	for _, w := range orderWords {
		if strings.EqualFold(v, w.word) {
			return w.pos, nil
		}
	}
	n, err := strconv.Atoi(v)
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("order %q is out of range", s)
	default:
		return 0, fmt.Errorf("order %q is not really-first, first, middle, last, really-last or an integer", s)
	}
}

// OrderName returns the word for a named position ("first") or the integer
// as text ("5"). ParseOrder(OrderName(pos)) is pos for every pos.
func OrderName(pos int) string {
	for _, w := range orderWords {
		if w.pos == pos {
			return w.word
		}
	}
	return strconv.Itoa(pos)
}

// Ordered is what Sort needs to know of a hook.
type Ordered struct {
	// Name identifies the hook in Before and After lists and in errors.
	// Required and unique within the phase.
	Name string

	// Order is the hook's position (see ParseOrder). The zero value is
	// First; use Middle for a hook that says nothing.
	Order int

	// Before names hooks of the same phase this one must run before. Nil
	// means none.
	Before []string

	// After names hooks of the same phase this one must run after. Nil means
	// none.
	After []string
}

// OrderError is one problem Sort found in how the hooks of a phase relate.
// Sort joins every problem it finds with errors.Join, each one an
// *OrderError, so callers can pick them out with errors.As.
type OrderError struct {
	// Phase is the phase name Sort was given.
	Phase string

	// Hooks names the hooks involved: the duplicated name, the hook whose
	// before or after list is wrong, or the hooks of a cycle in cycle order.
	// It is nil for a hook with no name.
	Hooks []string

	// Msg says what is wrong, naming the hooks. Error returns it as is.
	Msg string
}

var _ error = (*OrderError)(nil)

// Error returns Msg.
func (e *OrderError) Error() string { return e.Msg }

// Sort returns the indices of hooks in the order they run: a topological
// order that honours every Before and After constraint in which, among the
// hooks free to run, the one with the lowest Order runs first, ties kept in
// input (config) order. This is Kahn's algorithm with a priority queue keyed
// by (Order, index); a hook's Order never lets it run before a hook it must
// follow, and Before and After always override Order. The result depends
// only on hooks, never on map iteration order. Naming the same hook twice,
// or saying both "a before b" and "b after a", is allowed.
//
// phase is the name of the phase the hooks belong to; it appears in error
// messages only. Callers pass the hooks of one phase, so a name that exists
// only in another phase is unknown here.
//
// On error Sort returns nil and every problem it found, joined with
// errors.Join, each an *OrderError, in this order:
//
//	hooks[2] has no name
//	hooks[1] and hooks[4] are both named "x"
//	hook "a": before: names itself
//	hook "a": after: no hook named "nope" in phase post-config
//	hooks "a", "b", "c" form a cycle: a before b, c after b, c before a
//
// The hooks[i] are indices into hooks, which are not the config's hooks[i]
// once a caller has picked out one phase. A Before or After naming a
// duplicated name refers to its first entry. A cycle is reported once per
// group of hooks that depend on each other (strongly connected component) as
// the shortest cycle through the group's earliest hook, starting there; each
// step says which hook declared it ("a before b" is in a's Before list,
// "c after b" in c's After list).
func Sort(phase string, hooks []Ordered) ([]int, error) {
	n := len(hooks)
	var errs []error
	fail := func(msg string, names ...string) {
		errs = append(errs, &OrderError{Phase: phase, Hooks: names, Msg: msg})
	}

	// Names: the first entry of each name, then the problems in entry order.
	index := make(map[string]int, n)
	entries := make(map[string][]int)
	for i, h := range hooks {
		if h.Name == "" {
			continue
		}
		if _, ok := index[h.Name]; !ok {
			index[h.Name] = i
		}
		entries[h.Name] = append(entries[h.Name], i)
	}
	for i, h := range hooks {
		switch {
		case h.Name == "":
			fail(fmt.Sprintf("hooks[%d] has no name", i))
		case index[h.Name] == i && len(entries[h.Name]) > 1:
			fail(duplicateMsg(h.Name, entries[h.Name]), h.Name)
		}
	}

	// Constraints: one edge from -> to for each "from runs before to".
	g := graph{succ: make([][]int, n), indeg: make([]int, n), how: make(map[edge]declared)}
	where := "phase " + phase
	if phase == "" {
		where = "this phase"
	}
	for i, h := range hooks {
		label := fmt.Sprintf("hook %q", h.Name)
		if h.Name == "" {
			label = fmt.Sprintf("hooks[%d]", i)
		}
		for _, list := range [...]struct {
			key    string
			names  []string
			before bool
		}{{"before", h.Before, true}, {"after", h.After, false}} {
			for _, ref := range list.names {
				j, ok := index[ref]
				switch {
				case h.Name != "" && ref == h.Name:
					fail(fmt.Sprintf("%s: %s: names itself", label, list.key), h.Name)
				case !ok:
					fail(fmt.Sprintf("%s: %s: no hook named %q in %s", label, list.key, ref, where), nameList(h.Name)...)
				case list.before:
					g.add(edge{i, j}, declared{h.Name + " before " + ref, true})
				default:
					g.add(edge{j, i}, declared{h.Name + " after " + ref, false})
				}
			}
		}
	}

	// Kahn's algorithm, always taking the free hook with the lowest
	// (Order, index).
	order := make([]int, 0, n)
	indeg := slices.Clone(g.indeg)
	q := &readyQueue{hooks: hooks}
	for i := range n {
		if indeg[i] == 0 {
			q.idx = append(q.idx, i)
		}
	}
	heap.Init(q)
	for q.Len() > 0 {
		i := heap.Pop(q).(int)
		order = append(order, i)
		for _, j := range g.succ[i] {
			indeg[j]--
			if indeg[j] == 0 {
				heap.Push(q, j)
			}
		}
	}
	if len(order) < n {
		// Every hook left over is in a cycle or after one.
		left := make([]bool, n)
		for i := range n {
			left[i] = indeg[i] > 0
		}
		for _, c := range g.cycles(left) {
			names := make([]string, len(c))
			steps := make([]string, len(c))
			for k, i := range c {
				names[k] = hooks[i].Name
				steps[k] = g.how[edge{i, c[(k+1)%len(c)]}].text
			}
			quoted := make([]string, len(names))
			for k, name := range names {
				quoted[k] = strconv.Quote(name)
			}
			fail(fmt.Sprintf("hooks %s form a cycle: %s", strings.Join(quoted, ", "), strings.Join(steps, ", ")), names...)
		}
	}

	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return order, nil
}

// duplicateMsg says that the entries at (two or more) share name.
func duplicateMsg(name string, at []int) string {
	refs := make([]string, len(at))
	for k, i := range at {
		refs[k] = fmt.Sprintf("hooks[%d]", i)
	}
	if len(at) == 2 {
		return fmt.Sprintf("%s and %s are both named %q", refs[0], refs[1], name)
	}
	return fmt.Sprintf("%s and %s are all named %q", strings.Join(refs[:len(refs)-1], ", "), refs[len(refs)-1], name)
}

// nameList is []string{name}, or nil for "".
func nameList(name string) []string {
	if name == "" {
		return nil
	}
	return []string{name}
}

// edge says hook from runs before hook to (indices into the hooks).
type edge struct{ from, to int }

// declared is how an edge was written: "a before b" or "b after a".
type declared struct {
	text   string
	before bool // from a Before list
}

// graph holds the constraints between the hooks of one phase. Successor
// lists keep the order in which the constraints were found, so everything
// computed from them is deterministic.
type graph struct {
	succ  [][]int
	indeg []int
	how   map[edge]declared
}

// add records e once; when an edge is declared both ways, the Before form
// names it in messages.
func (g *graph) add(e edge, d declared) {
	if old, ok := g.how[e]; ok {
		if d.before && !old.before {
			g.how[e] = d
		}
		return
	}
	g.how[e] = d
	g.succ[e.from] = append(g.succ[e.from], e.to)
	g.indeg[e.to]++
}

// cycles returns one cycle for each strongly connected component of two or
// more hooks among those marked in left: the shortest cycle through the
// component's lowest index, starting there. The cycles come in the order of
// their first hook.
func (g *graph) cycles(left []bool) [][]int {
	n := len(g.succ)

	// Tarjan's algorithm, restricted to the hooks left.
	num := make([]int, n) // visit number, 0 while unvisited
	low := make([]int, n)
	onStack := make([]bool, n)
	comp := make([]int, n) // component number + 1, 0 if in none of two or more
	var stack []int
	var comps [][]int
	visits := 0
	var visit func(v int)
	visit = func(v int) {
		visits++
		num[v], low[v] = visits, visits
		stack = append(stack, v)
		onStack[v] = true
		for _, w := range g.succ[v] {
			switch {
			case !left[w]:
			case num[w] == 0:
				visit(w)
				low[v] = min(low[v], low[w])
			case onStack[w]:
				low[v] = min(low[v], num[w])
			}
		}
		if low[v] != num[v] {
			return
		}
		k := len(stack) - 1
		for stack[k] != v {
			k--
		}
		members := slices.Clone(stack[k:])
		stack = stack[:k]
		for _, w := range members {
			onStack[w] = false
		}
		if len(members) > 1 {
			slices.Sort(members)
			comps = append(comps, members)
		}
	}
	for v := range n {
		if left[v] && num[v] == 0 {
			visit(v)
		}
	}
	slices.SortFunc(comps, func(a, b []int) int { return a[0] - b[0] })

	out := make([][]int, 0, len(comps))
	for c, members := range comps {
		for _, v := range members {
			comp[v] = c + 1
		}
		out = append(out, g.shortestCycle(members[0], comp))
	}
	return out
}

// shortestCycle returns the shortest cycle from start back to start that
// stays among the hooks with start's comp, as the list of hooks from start.
// Breadth-first, following successors in their stored order.
func (g *graph) shortestCycle(start int, comp []int) []int {
	parent := make(map[int]int)
	queue := []int{start}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for _, v := range g.succ[u] {
			if v == start {
				var path []int
				for w := u; w != start; w = parent[w] {
					path = append(path, w)
				}
				path = append(path, start)
				slices.Reverse(path)
				return path
			}
			if _, seen := parent[v]; !seen && comp[v] == comp[start] {
				parent[v] = u
				queue = append(queue, v)
			}
		}
	}
	panic("phases: strongly connected component without a cycle") // unreachable
}

// readyQueue is a min-heap of indices into hooks keyed by (Order, index).
type readyQueue struct {
	hooks []Ordered
	idx   []int
}

func (q *readyQueue) Len() int { return len(q.idx) }

func (q *readyQueue) Less(a, b int) bool {
	i, j := q.idx[a], q.idx[b]
	if oi, oj := q.hooks[i].Order, q.hooks[j].Order; oi != oj {
		return oi < oj
	}
	return i < j
}

func (q *readyQueue) Swap(a, b int) { q.idx[a], q.idx[b] = q.idx[b], q.idx[a] }

func (q *readyQueue) Push(x any) { q.idx = append(q.idx, x.(int)) }

func (q *readyQueue) Pop() any {
	last := q.idx[len(q.idx)-1]
	q.idx = q.idx[:len(q.idx)-1]
	return last
}
