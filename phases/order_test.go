package phases

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// hk builds an Ordered; before and after are comma-separated names.
func hk(name string, order int, before, after string) Ordered {
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}
	return Ordered{Name: name, Order: order, Before: split(before), After: split(after)}
}

// names maps indices returned by Sort to hook names.
func names(hooks []Ordered, idx []int) []string {
	out := make([]string, len(idx))
	for k, i := range idx {
		out[k] = hooks[i].Name
	}
	return out
}

// leaves returns the errors joined in err, or err alone.
func leaves(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestSort(t *testing.T) {
	tests := []struct {
		name  string
		hooks []Ordered
		want  []string
	}{
		{
			name: "empty",
			want: []string{},
		},
		{
			name:  "one",
			hooks: []Ordered{hk("a", Middle, "", "")},
			want:  []string{"a"},
		},
		{
			name:  "ties keep config order",
			hooks: []Ordered{hk("c", Middle, "", ""), hk("a", Middle, "", ""), hk("b", Middle, "", "")},
			want:  []string{"c", "a", "b"},
		},
		{
			name: "named positions",
			hooks: []Ordered{
				hk("rl", ReallyLast, "", ""), hk("l", Last, "", ""), hk("m", Middle, "", ""),
				hk("f", First, "", ""), hk("rf", ReallyFirst, "", ""),
			},
			want: []string{"rf", "f", "m", "l", "rl"},
		},
		{
			name: "integers between and beyond named positions",
			hooks: []Ordered{
				hk("big", 100, "", ""), hk("middle", Middle, "", ""), hk("five", 5, "", ""),
				hk("first", First, "", ""), hk("neg", -20, "", ""), hk("rf", ReallyFirst, "", ""),
				hk("five-too", 5, "", ""), hk("minus-one", -1, "", ""),
			},
			want: []string{"neg", "rf", "minus-one", "first", "five", "five-too", "middle", "big"},
		},
		{
			name:  "before overrides position",
			hooks: []Ordered{hk("early", First, "", ""), hk("late", Last, "early", "")},
			want:  []string{"late", "early"},
		},
		{
			name:  "after overrides position",
			hooks: []Ordered{hk("early", ReallyFirst, "", "late"), hk("late", ReallyLast, "", "")},
			want:  []string{"late", "early"},
		},
		{
			name: "a hook waits for its predecessor, not for its own position",
			// x is really-first but must follow a (last); y (first) is free
			// and goes ahead of both.
			hooks: []Ordered{hk("a", Last, "x", ""), hk("x", ReallyFirst, "", ""), hk("y", First, "", "")},
			want:  []string{"y", "a", "x"},
		},
		{
			name:  "chain by after",
			hooks: []Ordered{hk("c", First, "", "b"), hk("b", First, "", "a"), hk("a", Last, "", "")},
			want:  []string{"a", "b", "c"},
		},
		{
			name:  "chain by before",
			hooks: []Ordered{hk("c", ReallyFirst, "", ""), hk("b", Middle, "c", ""), hk("a", ReallyLast, "b", "")},
			want:  []string{"a", "b", "c"},
		},
		{
			name: "diamond",
			hooks: []Ordered{
				hk("d", ReallyFirst, "", "b,c"), hk("b", Middle, "", "a"), hk("c", First, "", "a"),
				hk("a", Last, "", ""), hk("e", ReallyLast, "", ""), hk("f", ReallyFirst, "", ""),
			},
			want: []string{"f", "a", "c", "b", "d", "e"},
		},
		{
			name: "constraints stated twice",
			hooks: []Ordered{
				hk("b", First, "", "a,a"), hk("a", Last, "b,b", ""),
			},
			want: []string{"a", "b"},
		},
		{
			name:  "unrelated hooks keep their positions around a chain",
			hooks: []Ordered{hk("m1", Middle, "", ""), hk("z", Middle, "", "y"), hk("y", Last, "", ""), hk("m2", Middle, "", "")},
			want:  []string{"m1", "m2", "y", "z"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Sort("post-config", tt.hooks)
			if err != nil {
				t.Fatalf("Sort: %v", err)
			}
			if got == nil {
				t.Fatal("Sort returned nil without an error")
			}
			if g := names(tt.hooks, got); !slices.Equal(g, tt.want) {
				t.Errorf("order = %q, want %q", g, tt.want)
			}
		})
	}
}

func TestSortErrors(t *testing.T) {
	tests := []struct {
		name  string
		phase string
		hooks []Ordered
		want  []string   // each joined error's message, in order
		names [][]string // each joined error's Hooks
	}{
		{
			name:  "cycle of two",
			hooks: []Ordered{hk("a", Middle, "b", ""), hk("b", Middle, "a", "")},
			want:  []string{`hooks "a", "b" form a cycle: a before b, b before a`},
			names: [][]string{{"a", "b"}},
		},
		{
			name:  "cycle of two declared by one hook",
			hooks: []Ordered{hk("a", Middle, "b", "b"), hk("b", Middle, "", "")},
			want:  []string{`hooks "a", "b" form a cycle: a before b, a after b`},
			names: [][]string{{"a", "b"}},
		},
		{
			name:  "cycle of three",
			hooks: []Ordered{hk("a", Middle, "b", ""), hk("b", Middle, "c", ""), hk("c", Middle, "a", "")},
			want:  []string{`hooks "a", "b", "c" form a cycle: a before b, b before c, c before a`},
			names: [][]string{{"a", "b", "c"}},
		},
		{
			name:  "cycle of three by before and after",
			hooks: []Ordered{hk("a", Middle, "b", "c"), hk("b", Middle, "", ""), hk("c", Middle, "", "b")},
			want:  []string{`hooks "a", "b", "c" form a cycle: a before b, c after b, a after c`},
			names: [][]string{{"a", "b", "c"}},
		},
		{
			name: "cycle stated both ways names the before",
			hooks: []Ordered{
				hk("b", Middle, "a", "a"), hk("a", Middle, "b", ""),
			},
			want:  []string{`hooks "b", "a" form a cycle: b before a, a before b`},
			names: [][]string{{"b", "a"}},
		},
		{
			name: "cycle starts at the first hook in config order",
			hooks: []Ordered{
				hk("x", Middle, "", ""), hk("c", ReallyFirst, "a", ""), hk("b", Middle, "c", ""), hk("a", Middle, "b", ""),
			},
			want:  []string{`hooks "c", "a", "b" form a cycle: c before a, a before b, b before c`},
			names: [][]string{{"c", "a", "b"}},
		},
		{
			name: "the shortest cycle, not the whole component",
			hooks: []Ordered{
				hk("a", Middle, "b", ""), hk("b", Middle, "c,a", ""), hk("c", Middle, "a", ""),
			},
			want: []string{`hooks "a", "b" form a cycle: a before b, b before a`},
		},
		{
			name: "two cycles and a hook after one",
			hooks: []Ordered{
				hk("p", Middle, "", "a"), hk("x", Middle, "y", ""), hk("a", Middle, "b", ""),
				hk("b", Middle, "a", ""), hk("y", Middle, "x", ""), hk("free", Middle, "", ""),
			},
			want: []string{
				`hooks "x", "y" form a cycle: x before y, y before x`,
				`hooks "a", "b" form a cycle: a before b, b before a`,
			},
		},
		{
			name:  "self reference",
			hooks: []Ordered{hk("a", Middle, "b,a", "a"), hk("b", Middle, "", "")},
			want:  []string{`hook "a": before: names itself`, `hook "a": after: names itself`},
			names: [][]string{{"a"}, {"a"}},
		},
		{
			name:  "unknown names",
			hooks: []Ordered{hk("a", Middle, "", "nope"), hk("b", Middle, "migrate", "")},
			want: []string{
				`hook "a": after: no hook named "nope" in phase post-config`,
				`hook "b": before: no hook named "migrate" in phase post-config`,
			},
			names: [][]string{{"a"}, {"b"}},
		},
		{
			name:  "unknown name without a phase",
			phase: "-",
			hooks: []Ordered{hk("a", Middle, "", "nope")},
			want:  []string{`hook "a": after: no hook named "nope" in this phase`},
		},
		{
			name: "duplicate names",
			hooks: []Ordered{
				hk("y", Middle, "", ""), hk("x", Middle, "", ""), hk("y", Middle, "", ""),
				hk("z", Middle, "", ""), hk("x", Middle, "", ""), hk("x", Middle, "", ""),
			},
			want: []string{
				`hooks[0] and hooks[2] are both named "y"`,
				`hooks[1], hooks[4] and hooks[5] are all named "x"`,
			},
			names: [][]string{{"y"}, {"x"}},
		},
		{
			name:  "no name",
			hooks: []Ordered{hk("a", Middle, "", ""), hk("", Middle, "a", "")},
			want:  []string{`hooks[1] has no name`},
			names: [][]string{nil},
		},
		{
			name:  "no name and a bad reference",
			hooks: []Ordered{hk("", Middle, "", "gone")},
			want:  []string{`hooks[0] has no name`, `hooks[0]: after: no hook named "gone" in phase post-config`},
			names: [][]string{nil, nil},
		},
		{
			name: "several errors at once",
			hooks: []Ordered{
				hk("a", Middle, "b", ""), hk("dup", Middle, "", "dup"), hk("b", Middle, "a", "ghost"),
				hk("dup", Middle, "", ""), hk("c", Middle, "", "d"), hk("d", Middle, "", "c"),
			},
			want: []string{
				`hooks[1] and hooks[3] are both named "dup"`,
				`hook "dup": after: names itself`,
				`hook "b": after: no hook named "ghost" in phase post-config`,
				`hooks "a", "b" form a cycle: a before b, b before a`,
				`hooks "c", "d" form a cycle: d after c, c after d`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			phase := tt.phase
			switch phase {
			case "":
				phase = "post-config"
			case "-":
				phase = ""
			}
			got, err := Sort(phase, tt.hooks)
			if err == nil {
				t.Fatalf("Sort = %v, want an error", got)
			}
			if got != nil {
				t.Errorf("Sort returned %v with its error, want nil", got)
			}
			var oe *OrderError
			if !errors.As(err, &oe) {
				t.Fatalf("errors.As(%T, *OrderError) = false", err)
			}
			errs := leaves(err)
			var msgs []string
			for k, e := range errs {
				msgs = append(msgs, e.Error())
				oe, ok := e.(*OrderError)
				if !ok {
					t.Errorf("error %d is %T, want *OrderError", k, e)
					continue
				}
				if oe.Phase != phase {
					t.Errorf("error %d: Phase = %q, want %q", k, oe.Phase, phase)
				}
				if tt.names != nil && k < len(tt.names) && !slices.Equal(oe.Hooks, tt.names[k]) {
					t.Errorf("error %d: Hooks = %q, want %q", k, oe.Hooks, tt.names[k])
				}
			}
			if !slices.Equal(msgs, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(msgs, "\n"), strings.Join(tt.want, "\n"))
			}
			if err.Error() != strings.Join(tt.want, "\n") {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
}

// TestSortDeterministic sorts the same shuffled input many times; the
// result, or the error text, must never change.
func TestSortDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	build := func(cyclic bool) []Ordered {
		const n = 40
		hooks := make([]Ordered, n)
		for i := range hooks {
			hooks[i].Name = fmt.Sprintf("h%02d", i)
			hooks[i].Order = []int{ReallyFirst, First, Middle, Last, ReallyLast, 5}[rng.IntN(6)]
			// Constraints only towards lower numbers keep it acyclic.
			for range rng.IntN(3) {
				if i == 0 {
					break
				}
				j := rng.IntN(i)
				if rng.IntN(2) == 0 {
					hooks[i].After = append(hooks[i].After, hooks[j].Name)
				} else {
					hooks[j].Before = append(hooks[j].Before, hooks[i].Name)
				}
			}
		}
		if cyclic {
			hooks[3].After = append(hooks[3].After, "h30")
			hooks[30].After = append(hooks[30].After, "h03")
			hooks[10].Before = append(hooks[10].Before, "h20", "h10")
			hooks[20].Before = append(hooks[20].Before, "h10")
		}
		rng.Shuffle(n, func(i, j int) { hooks[i], hooks[j] = hooks[j], hooks[i] })
		return hooks
	}
	for _, cyclic := range []bool{false, true} {
		t.Run(fmt.Sprintf("cyclic=%v", cyclic), func(t *testing.T) {
			hooks := build(cyclic)
			first, firstErr := Sort("child-init", hooks)
			if (firstErr != nil) != cyclic {
				t.Fatalf("Sort error = %v, want error: %v", firstErr, cyclic)
			}
			if !cyclic {
				checkOrder(t, hooks, first)
			}
			for range 100 {
				got, err := Sort("child-init", hooks)
				if !slices.Equal(got, first) {
					t.Fatalf("Sort = %v, first run gave %v", got, first)
				}
				if fmt.Sprint(err) != fmt.Sprint(firstErr) {
					t.Fatalf("Sort error = %v, first run gave %v", err, firstErr)
				}
			}
		})
	}
}

// checkOrder fails t unless order is a permutation of hooks that honours
// every constraint and, at each step, runs the lowest (Order, index) among
// the hooks free to run. hooks must have unique names.
func checkOrder(t *testing.T, hooks []Ordered, order []int) {
	t.Helper()
	n := len(hooks)
	if len(order) != n {
		t.Fatalf("order has %d entries, want %d", len(order), n)
	}
	index := make(map[string]int, n)
	for i, h := range hooks {
		index[h.Name] = i
	}
	preds := make([][]int, n)
	for i, h := range hooks {
		for _, b := range h.Before {
			preds[index[b]] = append(preds[index[b]], i)
		}
		for _, a := range h.After {
			preds[i] = append(preds[i], index[a])
		}
	}
	done := make([]bool, n)
	for step, i := range order {
		if i < 0 || i >= n || done[i] {
			t.Fatalf("order %v is not a permutation of 0..%d", order, n-1)
		}
		free := func(j int) bool {
			if done[j] {
				return false
			}
			for _, p := range preds[j] {
				if !done[p] {
					return false
				}
			}
			return true
		}
		if !free(i) {
			t.Fatalf("step %d runs %q before one of its predecessors: %v", step, hooks[i].Name, order)
		}
		for j := range n {
			if free(j) && (hooks[j].Order < hooks[i].Order || hooks[j].Order == hooks[i].Order && j < i) {
				t.Fatalf("step %d runs %q, but %q was free with a lower (order, index): %v", step, hooks[i].Name, hooks[j].Name, order)
			}
		}
		done[i] = true
	}
}

func TestParseOrder(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"", Middle},
		{"   ", Middle},
		{"really-first", ReallyFirst},
		{"first", First},
		{"middle", Middle},
		{"last", Last},
		{"really-last", ReallyLast},
		{" Really-Last\t", ReallyLast},
		{"FIRST", First},
		{"5", 5},
		{"-20", -20},
		{" 15 ", 15},
		{"+7", 7},
		{"0", First},
		{"-10", ReallyFirst},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			got, err := ParseOrder(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("ParseOrder(%q) = %d, %v; want %d, nil", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseOrderErrors(t *testing.T) {
	const words = "really-first, first, middle, last, really-last or an integer"
	tests := []struct {
		in, want string
	}{
		{"soon", `order "soon" is not ` + words},
		{"really first", `order "really first" is not ` + words},
		{"really_last", `order "really_last" is not ` + words},
		{"1.5", `order "1.5" is not ` + words},
		{"5x", `order "5x" is not ` + words},
		{"- 5", `order "- 5" is not ` + words},
		{"99999999999999999999", `order "99999999999999999999" is out of range`},
		{"-99999999999999999999", `order "-99999999999999999999" is out of range`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseOrder(tt.in)
			if err == nil {
				t.Fatalf("ParseOrder(%q) = %d, want an error", tt.in, got)
			}
			if err.Error() != tt.want {
				t.Errorf("ParseOrder(%q) error = %q, want %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestOrderName(t *testing.T) {
	tests := []struct {
		pos  int
		want string
	}{
		{ReallyFirst, "really-first"},
		{First, "first"},
		{Middle, "middle"},
		{Last, "last"},
		{ReallyLast, "really-last"},
		{5, "5"},
		{-20, "-20"},
		{-1, "-1"},
		{math.MaxInt, fmt.Sprint(math.MaxInt)},
	}
	for _, tt := range tests {
		if got := OrderName(tt.pos); got != tt.want {
			t.Errorf("OrderName(%d) = %q, want %q", tt.pos, got, tt.want)
		}
	}

	// Round trip: every position survives OrderName then ParseOrder, and
	// OrderName gives the canonical spelling of what ParseOrder accepts.
	positions := []int{math.MinInt, math.MinInt + 1, math.MaxInt, math.MaxInt - 1}
	for p := -100; p <= 100; p++ {
		positions = append(positions, p)
	}
	for _, p := range positions {
		got, err := ParseOrder(OrderName(p))
		if err != nil || got != p {
			t.Errorf("ParseOrder(OrderName(%d)) = %d, %v", p, got, err)
		}
		if back := OrderName(got); back != OrderName(p) {
			t.Errorf("OrderName(ParseOrder(%q)) = %q", OrderName(p), back)
		}
	}
}

// fuzzHooks builds up to 8 hooks from data: mostly unique names, sometimes
// a duplicate or an empty one, positions from -8 to 7 (so ties are common),
// and up to 3 before and 3 after names each, sometimes unknown or the hook's
// own.
func fuzzHooks(data []byte) []Ordered {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	n := int(next() % 9)
	if n == 0 {
		return nil
	}
	ref := func() string {
		b := next()
		if b >= 240 {
			return "zz"
		}
		return fmt.Sprintf("h%d", int(b)%n)
	}
	hooks := make([]Ordered, n)
	for i := range hooks {
		h := &hooks[i]
		switch b := next(); {
		case b < 224:
			h.Name = fmt.Sprintf("h%d", i)
		case b < 252:
			h.Name = fmt.Sprintf("h%d", int(b)%n)
		}
		h.Order = int(int8(next())) / 16
		for range next() % 4 {
			h.Before = append(h.Before, ref())
		}
		for range next() % 4 {
			h.After = append(h.After, ref())
		}
	}
	return hooks
}

// fuzzTrouble reports whether hooks has a naming problem: an empty or
// duplicate name, or a before/after naming the hook itself or no hook.
func fuzzTrouble(hooks []Ordered) bool {
	seen := make(map[string]bool)
	for _, h := range hooks {
		if h.Name == "" || seen[h.Name] {
			return true
		}
		seen[h.Name] = true
	}
	for _, h := range hooks {
		for _, r := range slices.Concat(h.Before, h.After) {
			if r == h.Name || !seen[r] {
				return true
			}
		}
	}
	return false
}

// fuzzCyclic reports whether the constraints of hooks, which have no naming
// problem, contain a cycle (depth-first search).
func fuzzCyclic(hooks []Ordered) bool {
	index := make(map[string]int)
	for i, h := range hooks {
		index[h.Name] = i
	}
	succ := make([][]int, len(hooks))
	for i, h := range hooks {
		for _, b := range h.Before {
			succ[i] = append(succ[i], index[b])
		}
		for _, a := range h.After {
			succ[index[a]] = append(succ[index[a]], i)
		}
	}
	state := make([]int, len(hooks)) // 0 new, 1 on the path, 2 done
	var visit func(int) bool
	visit = func(v int) bool {
		state[v] = 1
		for _, w := range succ[v] {
			if state[w] == 1 || state[w] == 0 && visit(w) {
				return true
			}
		}
		state[v] = 2
		return false
	}
	for v := range hooks {
		if state[v] == 0 && visit(v) {
			return true
		}
	}
	return false
}

// runsBefore reports whether hooks declare that a runs before b.
func runsBefore(hooks []Ordered, a, b string) bool {
	for _, h := range hooks {
		if h.Name == a && slices.Contains(h.Before, b) || h.Name == b && slices.Contains(h.After, a) {
			return true
		}
	}
	return false
}

func FuzzSort(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{3, 0, 160, 1, 0, 0, 0, 20, 0, 1, 1, 0, 40, 1, 0, 1})
	f.Add([]byte{2, 0, 0, 1, 1, 0, 0, 0, 1, 0})                      // a cycle of two
	f.Add([]byte{4, 230, 0, 0, 0, 255, 0, 1, 250, 0, 0, 0, 0, 0, 0}) // bad names
	f.Add([]byte("the quick brown fox jumps over the lazy dog"))
	f.Fuzz(func(t *testing.T, data []byte) {
		hooks := fuzzHooks(data)
		got, err := Sort("fuzz", hooks)
		if err == nil {
			if fuzzTrouble(hooks) {
				t.Fatalf("Sort(%+v) = %v, want a naming error", hooks, got)
			}
			checkOrder(t, hooks, got)
			return
		}
		if got != nil {
			t.Fatalf("Sort returned %v with its error", got)
		}
		var oe *OrderError
		if !errors.As(err, &oe) {
			t.Fatalf("errors.As(%v, *OrderError) = false", err)
		}
		trouble := fuzzTrouble(hooks)
		if !trouble && !fuzzCyclic(hooks) {
			t.Fatalf("Sort(%+v) failed without a cause: %v", hooks, err)
		}
		for _, e := range leaves(err) {
			oe, ok := e.(*OrderError)
			if !ok {
				t.Fatalf("joined error %T is not an *OrderError", e)
			}
			if oe.Phase != "fuzz" {
				t.Fatalf("Phase = %q", oe.Phase)
			}
			if trouble || !strings.Contains(oe.Msg, "form a cycle") {
				continue
			}
			// A reported cycle must be one.
			c := oe.Hooks
			if len(c) < 2 {
				t.Fatalf("cycle of %d hooks: %v", len(c), oe)
			}
			for k := range c {
				if !runsBefore(hooks, c[k], c[(k+1)%len(c)]) {
					t.Fatalf("%v: %s does not run before %s", oe, c[k], c[(k+1)%len(c)])
				}
			}
		}
	})
}
