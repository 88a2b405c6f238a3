package cpuset

import (
	"fmt"
	"strings"
	"testing"
)

func set(cpus ...int) Set {
	var s Set
	for _, c := range cpus {
		s.Set(c)
	}
	return s
}

func TestParseList(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"0", "0"}, {"3", "3"}, {"0-3", "0-3"}, {"0-3,8", "0-3,8"}, {"8,0-3", "0-3,8"},
		{"1,2,3,5", "1-3,5"}, {"2-2", "2"}, {"0-1,1-2", "0-2"},
	} {
		got, err := ParseList(tt.in)
		if err != nil || Format(got) != tt.want {
			t.Errorf("ParseList(%q) = %s, %v; want %s", tt.in, Format(got), err, tt.want)
		}
	}
	for _, in := range []string{"", "a", "-1", "1-", "-", "3-1", "0,,1", "1024", "0-1024", " 1", "0x1"} {
		if _, err := ParseList(in); err == nil || !strings.Contains(err.Error(), "is not a CPU list") {
			t.Errorf("ParseList(%q): %v, want an error", in, err)
		}
	}
}

func TestParse(t *testing.T) {
	allowed := set(0, 1, 2, 3)
	for _, in := range []string{"", "none", " none "} {
		if s, err := Parse(in, allowed); err != nil || s.Binds() {
			t.Errorf("Parse(%q) = %+v, %v; want none", in, s, err)
		}
	}
	if s, err := Parse("auto", allowed); err != nil || !s.Binds() {
		t.Errorf("Parse(auto) = %+v, %v", s, err)
	}
	s, err := Parse("0-1 2,3", allowed)
	if err != nil || len(s.sets) != 2 || Format(s.sets[0]) != "0-1" || Format(s.sets[1]) != "2-3" {
		t.Errorf("Parse(0-1 2,3) = %+v, %v", s, err)
	}
	for in, want := range map[string]string{
		"4":      "CPU 4 is not one phased may run on (0-3)",
		"0 2-5":  "CPU 4 is not one phased may run on (0-3)",
		"Auto":   "is not a CPU list",
		"0 - 1":  "is not a CPU list",
		"all":    "is not a CPU list",
		"0-3 x":  `"x" is not a CPU list`,
		"0,9999": "CPU 9999 is above 1023",
	} {
		if _, err := Parse(in, allowed); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q): %v, want %q", in, err, want)
		}
	}
}

func TestFor(t *testing.T) {
	auto := Spec{auto: true}
	for _, tt := range []struct {
		name    string
		spec    Spec
		allowed Set
		start   int
		want    []string // slots 0, 1, 2 ...
	}{
		{"two children, two CPUs", auto, set(0, 1), 2, []string{"0", "1", "0", "1"}},
		{"two children, eight CPUs", auto, set(0, 1, 2, 3, 4, 5, 6, 7), 2, []string{"0-3", "4-7", "0-3"}},
		{"three children, eight CPUs", auto, set(0, 1, 2, 3, 4, 5, 6, 7), 3, []string{"0-1", "2-4", "5-7", "0-1"}},
		{"more children than CPUs", auto, set(0, 1), 16, []string{"0", "1", "0", "1", "0"}},
		{"one child", auto, set(0, 1, 2, 3), 1, []string{"0-3", "0-3"}},
		{"start 0 is one group", auto, set(0, 1), 0, []string{"0-1"}},
		{"the CPUs allowed, not the first ones", auto, set(2, 3, 6, 7), 2, []string{"2-3", "6-7"}},
		{"lists in turn", Spec{sets: []Set{set(1), set(0)}}, set(0, 1), 2, []string{"1", "0", "1", "0"}},
	} {
		var got []string
		for slot := range tt.want {
			s, ok := tt.spec.For(slot, tt.start, tt.allowed)
			if !ok {
				t.Fatalf("%s: slot %d not bound", tt.name, slot)
			}
			got = append(got, Format(s))
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	if _, ok := None.For(0, 2, set(0, 1)); ok {
		t.Error("none binds")
	}
}
