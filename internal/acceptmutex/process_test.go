package acceptmutex

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/procfs"
)

// helperEnv, when set, makes TestHelperProcess play a child serving the
// socket on descriptor 3 through a Listener on the lock file it names.
const helperEnv = "PHASED_ACCEPTMUTEX_HELPER_LOCK"

// wakeOne as the helper's lock path makes it serve through ListenWakeOne.
const wakeOne = "wake-one"

// TestHelperProcess is a child, not a test: it serves HTTP (answering with
// its pid) on the inherited socket until SIGTERM, then prints its Stats as
// JSON on stdout.
func TestHelperProcess(t *testing.T) {
	lockPath := os.Getenv(helperEnv)
	if lockPath == "" {
		t.Skip("helper process only")
	}
	f := os.NewFile(3, "listener")
	var l *Listener
	var err error
	if lockPath == wakeOne {
		l, err = ListenWakeOne(f)
	} else {
		l, err = Listen(f, lockPath)
	}
	f.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		<-sig
		l.Close()
	}()
	pid := strconv.Itoa(os.Getpid())
	fmt.Println("ready")
	err = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, pid)
	}))
	if !errors.Is(err, net.ErrClosed) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(l.Stats())
	os.Exit(0)
}

type helper struct {
	cmd    *exec.Cmd
	stdout *bufio.Reader
	stderr bytes.Buffer
	waited chan struct{}
}

// startHelper re-executes the test binary as a child holding f as its
// descriptor 3, and waits until it serves. The child is killed (by its pid)
// and reaped when the test ends, if it has not exited by then.
func startHelper(t *testing.T, f *os.File, lockPath string) *helper {
	t.Helper()
	h := &helper{waited: make(chan struct{})}
	h.cmd = exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v=false")
	// A -race binary sleeps a second at exit unless told not to.
	h.cmd.Env = append(os.Environ(), helperEnv+"="+lockPath, "GORACE=atexit_sleep_ms=0")
	h.cmd.ExtraFiles = []*os.File{f}
	h.cmd.Stderr = &h.stderr
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.stdout = bufio.NewReader(out)
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-h.waited:
			return
		default:
		}
		h.cmd.Process.Kill()
		h.cmd.Wait()
	})
	line, err := h.stdout.ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("helper %d: got %q (%v) instead of ready; stderr: %s", h.cmd.Process.Pid, line, err, h.stderr.String())
	}
	return h
}

// stop sends SIGTERM, reads the child's Stats and reaps it.
func (h *helper) stop(t *testing.T) Stats {
	t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var st Stats
	decodeErr := json.NewDecoder(h.stdout).Decode(&st)
	exited := make(chan error, 1)
	go func() { exited <- h.cmd.Wait() }()
	select {
	case err := <-exited:
		close(h.waited)
		if err != nil || decodeErr != nil {
			t.Errorf("helper %d: exit %v, stats %v; stderr: %s", h.cmd.Process.Pid, err, decodeErr, h.stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Errorf("helper %d did not exit within 5s of SIGTERM", h.cmd.Process.Pid)
		h.cmd.Process.Kill()
		<-exited
		close(h.waited)
	}
	return st
}

func TestProcessesShareSocket(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	f, addr := socket(t)
	lockPath := filepath.Join(t.TempDir(), "accept.lock")
	const children, requests, clients = 4, 400, 8
	var helpers []*helper
	for range children {
		helpers = append(helpers, startHelper(t, f, lockPath))
	}

	client := noKeepAlive()
	var mu sync.Mutex
	byPid := map[string]int{}
	var next atomic.Int64
	errs := make(chan error, requests)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for next.Add(1) <= requests {
				pid, err := get(client, "http://"+addr+"/")
				if err != nil {
					errs <- err
					continue
				}
				mu.Lock()
				byPid[pid]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	var total Stats
	for _, h := range helpers {
		st := h.stop(t)
		t.Logf("child %d: %+v", h.cmd.Process.Pid, st)
		total.Accepted += st.Accepted
		total.Failed += st.Failed
	}
	t.Logf("requests by child pid: %v", byPid)
	if total.Accepted < requests {
		t.Errorf("children accepted %d connections for %d requests", total.Accepted, requests)
	}
	if total.Failed != 0 {
		t.Errorf("children failed %d accepts, want 0 under the lock", total.Failed)
	}
}

// TestWakeOneServesPastAStoppedProcess: with ListenWakeOne, a process that
// is stopped (SIGSTOP) while it waits for connections holds nobody up: the
// kernel wakes only processes that are waiting, and every request is
// served by the others. Under Listen's lock, the same stop of the holder
// would stop every process from accepting.
func TestWakeOneServesPastAStoppedProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	f, addr := socket(t)
	var helpers []*helper
	for range 3 {
		helpers = append(helpers, startHelper(t, f, wakeOne))
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	stopped := helpers[0].cmd.Process.Pid
	if err := syscall.Kill(stopped, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !procfs.Stopped(stopped); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not stop", stopped)
		}
	}
	byPid := map[string]int{}
	for i := range 100 {
		pid, err := get(client, "http://"+addr+"/")
		if err != nil {
			t.Fatalf("request %d with process %d stopped: %v", i, stopped, err)
		}
		byPid[pid]++
	}
	if byPid[strconv.Itoa(stopped)] != 0 {
		t.Errorf("the stopped process served %d requests", byPid[strconv.Itoa(stopped)])
	}
	syscall.Kill(stopped, syscall.SIGCONT)
	var total Stats
	for _, h := range helpers {
		st := h.stop(t)
		total.Accepted += st.Accepted
		total.Failed += st.Failed
	}
	t.Logf("requests by pid: %v; failed accepts: %d", byPid, total.Failed)
	if total.Accepted < 100 {
		t.Errorf("accepted %d connections for 100 requests", total.Accepted)
	}
}
