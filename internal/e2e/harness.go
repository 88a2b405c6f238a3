// Package e2e is the harness of phased's end-to-end tests: it builds the real
// binary, starts masters on 127.0.0.1, drives them with signals, the control
// socket and HTTP clients, and makes sure every process it started is gone
// when a test ends, and every file it made once the tests are done (see
// Main). The tests themselves are in the packages below, one per area:
// skeleton, phases, mpm, plugins, zerodowntime, apps, gateways and status.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/cpuset"
	"github.com/phasedhq/phased/internal/procfs"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds ./cmd/phased once per test process, with the race
// detector, into the harness's folder (see Main), and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	buildOnce.Do(func() {
		var dir string
		if dir, buildErr = binDir(); buildErr != nil {
			return
		}
		binPath = filepath.Join(dir, "phased")
		cmd := exec.Command("go", "build", "-race", "-o", binPath, "./cmd/phased")
		cmd.Dir = moduleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// ModuleRoot returns the phased module's root folder (where go.mod is).
func ModuleRoot() string { return moduleRoot() }

func moduleRoot() string {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "."
		}
		dir = parent
	}
}

// freePorts are the addresses FreePort has returned in this process.
var freePorts = struct {
	sync.Mutex
	given map[string]bool
}{given: map[string]bool{}}

// FreePort returns a loopback address with a port nobody listens on now,
// and one it has not returned before in this test binary: the kernel may
// hand the same free port to two calls in a row (a test that asked for a
// plain and a TLS port got one port twice). The port is below Linux's
// ephemeral range (32768 and up), which the kernel gives the local end of
// every outgoing connection: a port from that range, free when asked,
// was taken by some client's connection before phased could bind it
// while other packages' tests made thousands (TestRecycleIsARollingRestart
// failed so once in `make test`).
func FreePort(t testing.TB) string {
	t.Helper()
	freePorts.Lock()
	defer freePorts.Unlock()
	for range 1000 {
		addr := "127.0.0.1:" + strconv.Itoa(freePortLow+rand.IntN(freePortHigh-freePortLow))
		if freePorts.given[addr] {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue // somebody listens there
		}
		l.Close()
		freePorts.given[addr] = true
		return addr
	}
	t.Fatal("FreePort: no free port that was not given out before")
	return ""
}

// FreePort's ports: below the ephemeral range, above the benchmarks' (bench/*:
// 18400 to 20300).
const freePortLow, freePortHigh = 21000, 32768

// Log is a process's stderr, kept line by line and safe for concurrent use.
type Log struct {
	mu    sync.Mutex
	lines []string
	cond  *sync.Cond
}

func newLog() *Log {
	l := &Log{}
	l.cond = sync.NewCond(&l.mu)
	return l
}

func (l *Log) add(line string) {
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	l.cond.Broadcast()
}

// String returns everything logged so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// Format prints the log for a failure's message (%s, %v): everything but
// the access-log lines beyond the first and last few, so that the dump
// tells the error log's story, not thousands of requests.
func (l *Log) Format(f fmt.State, _ rune) {
	l.mu.Lock()
	defer l.mu.Unlock()
	const keep = 5
	var access []int
	for i, line := range l.lines {
		if accessLine(line) {
			access = append(access, i)
		}
	}
	if len(access) <= 2*keep {
		io.WriteString(f, strings.Join(l.lines, "\n"))
		return
	}
	drop := make(map[int]bool, len(access))
	for _, i := range access[keep : len(access)-keep] {
		drop[i] = true
	}
	noted := false
	for i, line := range l.lines {
		if drop[i] {
			if !noted {
				fmt.Fprintf(f, "[... %d access-log lines left out ...]\n", len(drop))
				noted = true
			}
			continue
		}
		io.WriteString(f, line+"\n")
	}
}

// accessLine tells a Common or Combined Log Format line, or a JSON access
// record.
func accessLine(line string) bool {
	return (strings.Contains(line, "] \"") && strings.Contains(line, " HTTP/")) ||
		(strings.HasPrefix(line, "{") && strings.Contains(line, `"request":`) && !strings.Contains(line, `"level":`))
}

// Count returns how many lines contain s.
func (l *Log) Count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// Records returns the JSON log lines whose msg is msg, decoded.
func (l *Log) Records(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range l.lines {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// Wait blocks until a line contains s at least n times, or fails t.
func (l *Log) Wait(t testing.TB, s string, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for l.Count(s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %d log lines with %q; log:\n%s", within, n, s, l.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Proc is a phased process started by a test.
type Proc struct {
	Cmd  *exec.Cmd
	Log  *Log
	Dir  string
	done chan struct{}
	err  error
}

// Start runs the phased binary with args in dir and returns at once. Its
// stderr is collected in Log; Cleanup ends it and everything it started.
func Start(t testing.TB, dir string, env []string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(Environ(t), env...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = pw
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	p := &Proc{Cmd: cmd, Log: newLog(), Dir: dir, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.Log.add(sc.Text())
		}
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			// What a failure's message seldom says: what the server saw.
			t.Logf("the log of phased %s (in %s):\n%v", strings.Join(args, " "), dir, p.Log)
		}
	})
	return p
}

// Environ returns the environment of a phased process that t starts: the
// test's own without PHASED_ variables, so a developer's shell cannot change
// what a test sees, and with TMPDIR set to ProcessTempDir(t). Start and Run
// use it; a test that starts phased by other means should too.
func Environ(t testing.TB) []string {
	t.Helper()
	// The binary is built with -race, whose runtime sleeps a second at exit
	// unless told not to.
	env := []string{"GORACE=atexit_sleep_ms=0", "TMPDIR=" + ProcessTempDir(t)}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PHASED_") && !strings.HasPrefix(kv, "GORACE=") && !strings.HasPrefix(kv, "TMPDIR=") {
			env = append(env, kv)
		}
	}
	return env
}

// PID returns the process id.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := Kill(t, p.PID(), sig); err != nil {
		t.Fatalf("kill -%v %d: %v", sig, p.PID(), err)
	}
}

// Kill sends sig to one process the test started (a child, a plugin, a
// hook) by its pid. A pid below 2 would signal a process group or init,
// never what a test means: it is reported as an error and nothing is sent.
// Safe from any goroutine and from cleanups.
func Kill(t testing.TB, pid int, sig syscall.Signal) error {
	t.Helper()
	if pid < 2 {
		t.Errorf("refusing kill -%v %d: not one process", sig, pid)
		return syscall.EINVAL
	}
	return syscall.Kill(pid, sig)
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitExit waits for the process to end and returns its exit code.
func (p *Proc) WaitExit(t testing.TB, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.Cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("pid %d still running after %s; log:\n%s", p.PID(), within, p.Log.String())
		return -1
	}
}

// kill ends the master and everything below it. The master is stopped
// first so it can start nothing new (a replacement child, a hook script)
// between the snapshot of its descendants and their end; they get SIGKILL,
// so no child-exit hook runs after the test, and kill waits until they are
// gone: a hook still writing into the test's folder would make its removal
// fail.
func (p *Proc) kill(t testing.TB) {
	if p.Exited() {
		return
	}
	// Stop the tree top down until no new process appears: a child
	// between the snapshot and its stop may have started a hook.
	syscall.Kill(p.PID(), syscall.SIGSTOP)
	var kids []int
	for range 50 {
		fresh := 0
		for _, pid := range Descendants(p.PID()) {
			if !slices.Contains(kids, pid) {
				kids = append(kids, pid)
				syscall.Kill(pid, syscall.SIGSTOP)
				fresh++
			}
		}
		if fresh == 0 {
			break
		}
	}
	for _, pid := range kids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	syscall.Kill(p.PID(), syscall.SIGKILL)
	<-p.done
	WaitGone(t, kids, 10*time.Second)
}

// Env returns variable name from the environment process pid started
// with ("" when it has none).
func Env(t testing.TB, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	val := ""
	for _, kv := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			val = v // the last one wins, as exec.Cmd dedups
		}
	}
	return val
}

// CPUsAllowed returns the CPU lists (Cpus_allowed_list) the threads of
// pid may run on, with how many threads have each.
func CPUsAllowed(pid int) map[string]int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	lists := map[string]int{}
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
				lists[strings.TrimSpace(v)]++
			}
		}
	}
	return lists
}

// AutoCPUs is the CPU list worker_cpu_affinity: auto gives child slot of
// a generation that starts start children, its grouping worked out apart
// from phased's (cpuset.Spec.For): the CPUs this process may run on, cut
// into min(start, CPUs) groups of consecutive CPUs, slot taking group slot
// mod groups.
func AutoCPUs(t testing.TB, slot, start int) string {
	t.Helper()
	allowed, err := cpuset.Allowed()
	if err != nil {
		t.Fatal(err)
	}
	cpus := cpuset.CPUs(allowed)
	groups := min(start, len(cpus))
	g := slot % groups
	var set cpuset.Set
	for _, c := range cpus[g*len(cpus)/groups : (g+1)*len(cpus)/groups] {
		set.Set(c)
	}
	return cpuset.Format(set)
}

// OnlyOn fails t unless every thread of each of pids may run on want (a
// CPU list) and nowhere else.
func OnlyOn(t testing.TB, what string, pids []int, want string) {
	t.Helper()
	for _, pid := range pids {
		if got := CPUsAllowed(pid); len(got) != 1 || got[want] == 0 {
			t.Errorf("%s: process %d's threads may run on %v, want all on %q", what, pid, got, want)
		}
	}
}

// Children returns the pids of pid's direct children.
func Children(pid int) []int { return procfs.Children(pid) }

// Descendants returns every process below pid.
func Descendants(pid int) []int { return procfs.Descendants(pid) }

// Alive reports whether pid is a live process. A zombie is not alive:
// kill -0 succeeds on zombies, so this reads /proc/PID/stat.
func Alive(pid int) bool { return procfs.Alive(pid) }

// WaitGone waits until none of pids is alive.
func WaitGone(t testing.TB, pids []int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var alive []int
		for _, p := range pids {
			if Alive(p) {
				alive = append(alive, p)
			}
		}
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes still alive after %s: %v", within, alive)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Run runs the phased binary to completion and returns its exit code,
// stdout and stderr.
func Run(t testing.TB, dir string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(Environ(t), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running phased %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return code, out.String(), errb.String()
}

// WriteFile writes content to dir/name and returns the path.
func WriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Get fetches url with a fresh connection and returns status and body.
func Get(url string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// WaitServing polls url until it answers 200.
func WaitServing(t testing.TB, url string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, _, err := Get(url)
		if err == nil && code == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not serving after %s: %d %v", url, within, code, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitLog is Log.Wait that gives up as soon as the process has exited.
func (p *Proc) WaitLog(t testing.TB, s string, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for p.Log.Count(s) < n {
		if p.Exited() {
			time.Sleep(50 * time.Millisecond) // let the last lines arrive
			if p.Log.Count(s) >= n {
				return
			}
			t.Fatalf("pid %d exited (%v) before logging %q; log:\n%s", p.PID(), p.err, s, p.Log.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %d log lines with %q; log:\n%s", within, n, s, p.Log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// OpenDir returns a new folder that every user can search, for tests whose
// children run as another user (t.TempDir's folders are private to root).
// It is in the harness's folder and removed when t ends.
func OpenDir(t testing.TB) string {
	t.Helper()
	return openDir(t, "open-", 0o755)
}

// Workers returns the pids of pid's serving children (phased's built-in
// child mode, --internal-child), not its plugin processes.
func Workers(pid int) []int {
	var out []int
	for _, c := range Children(pid) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c))
		if strings.Contains(string(b), "\x00--internal-child") {
			out = append(out, c)
		}
	}
	return out
}

// Plugins returns the pids of pid's plugin processes.
func Plugins(pid int) []int {
	var out []int
	for _, c := range Children(pid) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c))
		if strings.Contains(string(b), "--internal-plugin") {
			out = append(out, c)
		}
	}
	return out
}

// Build compiles the package pkg (a path from the module root, such as
// "./examples/mpm-ondemand") into the folder of Binary, which every user can
// read, once per test process, and returns the binary's path.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	Binary(t) // skips with -short, and makes the folder
	builtMu.Lock()
	defer builtMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	out := filepath.Join(filepath.Dir(binPath), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = moduleRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	built[pkg] = out
	return out
}

var (
	builtMu sync.Mutex
	built   = map[string]string{}
)
