// Command testreport runs go test once, with the arguments it is given and
// -json, and prints what plain `go test` prints (each package's result
// line, the output of the tests that fail), then a summary of the tests
// that skipped, with each one's reason, and a closing count:
//
//	tests: 1234 passed, 0 failed, 5 skipped
//
// It exits with go test's exit status. `make test` runs the whole suite
// through it:
//
//	go run ./internal/testreport -race -count=1 -timeout 9m ./...
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// skip is a test that skipped and why.
type skip struct {
	pkg, test, reason string
}

// report reads go test's events and writes the plain output to out.
type report struct {
	out            io.Writer
	buf            map[string][]string // output so far, by package and test
	skips          []skip
	passed, failed int
	failedIn       map[string]bool // packages with a failed test
}

func key(e event) string { return e.Package + "\x00" + e.Test }

func (r *report) add(e event) {
	switch {
	case e.Action == "build-output": // a package that does not build
		fmt.Fprint(r.out, e.Output)
	case e.Action == "output" && e.Test == "":
		if e.Output != "PASS\n" {
			fmt.Fprint(r.out, e.Output)
		}
	case e.Action == "output":
		r.buf[key(e)] = append(r.buf[key(e)], e.Output)
	case e.Test == "" && e.Action == "fail" && !r.failedIn[e.Package]:
		r.failed++ // a package that failed without a failed test: a build, a panic, a timeout
	case e.Test == "":
	case e.Action == "pass":
		r.passed++
		delete(r.buf, key(e))
	case e.Action == "fail":
		r.failed++
		r.failedIn[e.Package] = true
		for _, l := range r.buf[key(e)] {
			fmt.Fprint(r.out, l)
		}
		delete(r.buf, key(e))
	case e.Action == "skip":
		r.skips = append(r.skips, skip{pkg: e.Package, test: e.Test, reason: reason(r.buf[key(e)])})
		delete(r.buf, key(e))
	}
}

// reason is what a skipped test said: its output less the framing lines.
func reason(lines []string) string {
	var out []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return "(no reason given)"
	}
	return strings.Join(out, " / ")
}

func (r *report) summary() {
	if len(r.skips) > 0 {
		sort.Slice(r.skips, func(i, j int) bool {
			a, b := r.skips[i], r.skips[j]
			return a.pkg < b.pkg || a.pkg == b.pkg && a.test < b.test
		})
		fmt.Fprintf(r.out, "\nskipped tests (%d):\n", len(r.skips))
		for _, s := range r.skips {
			fmt.Fprintf(r.out, "  %s %s: %s\n", s.pkg, s.test, s.reason)
		}
	}
	fmt.Fprintf(r.out, "\ntests: %d passed, %d failed, %d skipped\n", r.passed, r.failed, len(r.skips))
}

func run(args []string, out io.Writer) (int, error) {
	cmd := exec.Command("go", append([]string{"test", "-json"}, args...)...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 1, err
	}
	if err := cmd.Start(); err != nil {
		return 1, err
	}
	r := &report{out: out, buf: map[string][]string{}, failedIn: map[string]bool{}}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Fprintln(out, sc.Text()) // not an event: pass it on
			continue
		}
		r.add(e)
	}
	werr := cmd.Wait()
	r.summary()
	if ee, ok := errors.AsType[*exec.ExitError](werr); ok {
		return ee.ExitCode(), nil
	}
	if werr != nil {
		return 1, werr
	}
	return 0, nil
}

func main() {
	code, err := run(os.Args[1:], os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
	}
	os.Exit(code)
}
