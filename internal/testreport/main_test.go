package main

import (
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	var out strings.Builder
	r := &report{out: &out, buf: map[string][]string{}, failedIn: map[string]bool{}}
	for _, e := range []event{
		{Action: "output", Package: "p", Test: "TestA", Output: "=== RUN   TestA\n"},
		{Action: "pass", Package: "p", Test: "TestA"},
		{Action: "output", Package: "p", Test: "TestB", Output: "=== RUN   TestB\n"},
		{Action: "output", Package: "p", Test: "TestB", Output: "    b_test.go:9: needs chromium\n"},
		{Action: "output", Package: "p", Test: "TestB", Output: "--- SKIP: TestB (0.00s)\n"},
		{Action: "skip", Package: "p", Test: "TestB"},
		{Action: "output", Package: "p", Test: "TestC", Output: "    c_test.go:3: broken\n"},
		{Action: "fail", Package: "p", Test: "TestC"},
		{Action: "output", Package: "p", Output: "PASS\n"},
		{Action: "output", Package: "p", Output: "FAIL\tp\t0.1s\n"},
		{Action: "fail", Package: "p"},
	} {
		r.add(e)
	}
	r.summary()
	want := "    c_test.go:3: broken\nFAIL\tp\t0.1s\n\nskipped tests (1):\n  p TestB: b_test.go:9: needs chromium\n\ntests: 1 passed, 1 failed, 1 skipped\n"
	if out.String() != want {
		t.Fatalf("report:\n%s\nwant:\n%s", out.String(), want)
	}
}

// A package that fails without a failed test (it does not build, it
// panics in TestMain, it times out) counts as one failure.
func TestReportPackageFailure(t *testing.T) {
	var out strings.Builder
	r := &report{out: &out, buf: map[string][]string{}, failedIn: map[string]bool{}}
	r.add(event{Action: "build-output", Package: "q", Output: "q/x.go:2: undefined: y\n"})
	r.add(event{Action: "output", Package: "q", Output: "FAIL\tq [build failed]\n"})
	r.add(event{Action: "fail", Package: "q"})
	r.summary()
	if !strings.Contains(out.String(), "undefined: y") || !strings.HasSuffix(out.String(), "tests: 0 passed, 1 failed, 0 skipped\n") {
		t.Fatalf("report:\n%s", out.String())
	}
}
