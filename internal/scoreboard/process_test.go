package scoreboard

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// helperEnv selects what TestHelperProcess does when the test binary is
// re-executed as a child.
const helperEnv = "PHASED_SCOREBOARD_HELPER"

// startHelper re-executes the test binary as a child playing mode, with the
// board's segment as its descriptor 3, as a master would pass it. It returns
// the running command, a pipe to its stdin, and its stdout.
func startHelper(t *testing.T, b *Board, mode string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v=false")
	// A -race binary sleeps a second at exit unless told not to.
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "GORACE=atexit_sleep_ms=0")
	cmd.ExtraFiles = []*os.File{b.File()}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		// Normally the helper has exited by now; never leave one behind.
		time.AfterFunc(10*time.Second, func() { cmd.Process.Kill() })
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper %s: %v\n%s", mode, err, stderr.String())
		}
	})
	return cmd, stdin, bufio.NewReader(stdout)
}

// TestHelperProcess is not a test: it is the child that the cross-process
// tests start. It does nothing unless PHASED_SCOREBOARD_HELPER is set.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process for the cross-process tests")
	}
	b, err := Open(os.NewFile(3, "scoreboard"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	defer b.Close()
	switch mode {
	case "write":
		// A worker child in process slot 1 serving a couple of requests.
		p := b.Proc(1)
		p.SetState(Idle)
		t0 := time.Unix(1700000000, 0)
		w := b.Worker(1, 0)
		w.StartConn()
		w.StartRequest(t0, netip.Addr{}, "GET", "/from-child", "HTTP/1.1")
		w.EndRequest(t0.Add(3*time.Millisecond), 1234)
		w.StartRequest(t0.Add(time.Second), netip.Addr{}, "HEAD", "/again", "HTTP/1.1")
		w.EndRequest(t0.Add(time.Second+time.Millisecond), 0)
		w.SetState(KeepAlive)
		b.Worker(1, 1).SetState(Idle)
		b.Worker(1, 2).StartRequest(t0.Add(2*time.Second), netip.Addr{}, "POST", "/upload", "HTTP/2.0")
		fmt.Println("done")
	case "churn":
		// A busy worker in slot (0, 1), until the parent closes stdin.
		var stopped atomic.Bool
		go func() {
			io.Copy(io.Discard, os.Stdin)
			stopped.Store(true)
		}()
		var served atomic.Uint64
		fmt.Println("started")
		churn(b.Worker(0, 1), &served, stopped.Load)
		fmt.Println(served.Load())
	default:
		fmt.Fprintln(os.Stderr, "helper: unknown mode", mode)
		os.Exit(2)
	}
	os.Exit(0)
}

// TestCrossProcess writes the board from a child process that opened its
// inherited descriptor, and reads it back in the parent.
func TestCrossProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	b := newBoard(t, 2, 3)
	b.SetGeneration(4)
	// The master's part: record the child in its slot.
	cmd, _, out := startHelper(t, b, "write")
	p := b.Proc(1)
	p.SetPID(cmd.Process.Pid)
	p.SetGeneration(4)

	if line, err := out.ReadString('\n'); err != nil || line != "done\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	snap := b.Snapshot()
	if got, want := snap.Letters(), "...K_W"; got != want {
		t.Errorf("Letters() = %q, want %q", got, want)
	}
	t0 := time.Unix(1700000000, 0)
	want := WorkerInfo{
		State:        KeepAlive,
		Requests:     2,
		Bytes:        1234,
		LastUsed:     t0.Add(time.Second + time.Millisecond),
		RequestStart: t0.Add(time.Second),
		LastDuration: time.Millisecond,
		RequestLine:  "HEAD /again HTTP/1.1",
		ConnCount:    2,
	}
	if got := snap.Workers[1][0]; !equalInfo(got, want) {
		t.Errorf("worker (1,0) =\n  %+v\nwant\n  %+v", got, want)
	}
	if got := snap.Workers[1][2].RequestLine; got != "POST /upload HTTP/2.0" {
		t.Errorf("worker (1,2) line %q", got)
	}
	if pi := snap.Procs[1]; pi.PID != cmd.Process.Pid || pi.State != Idle || pi.Generation != 4 {
		t.Errorf("proc 1 = %+v", pi)
	}
	sum := snap.Summary()
	if sum.Idle != 1 || sum.Busy != 2 || sum.Procs != 1 || sum.Requests != 2 || sum.Bytes != 1234 {
		t.Errorf("Summary() = %+v", sum)
	}
}

// TestCrossProcessSeqlock reads a slot while another process hammers it.
func TestCrossProcessSeqlock(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	b := newBoard(t, 1, 2)
	_, stdin, out := startHelper(t, b, "churn")
	if line, err := out.ReadString('\n'); err != nil || line != "started\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	w := b.Worker(0, 1)
	var reads, torn, moving int
	last := uint64(0)
	// At least 300 ms of snapshots, and on until the counter has moved a
	// few times (a loaded machine may leave the helper unscheduled for a
	// while), at most 10 s.
	start := time.Now()
	for time.Since(start) < 300*time.Millisecond || (moving < 3 && time.Since(start) < 10*time.Second) {
		info := w.Snapshot()
		reads++
		if info.Requests != last {
			moving++
			last = info.Requests
		}
		if err := checkChurn(info); err != nil {
			if torn++; torn <= 5 {
				t.Error(err)
			}
		}
	}
	stdin.Close()
	line, err := out.ReadString('\n')
	if err != nil {
		t.Fatalf("helper's count: %v", err)
	}
	served, err := strconv.ParseUint(line[:len(line)-1], 10, 64)
	if err != nil {
		t.Fatalf("helper's count %q: %v", line, err)
	}
	t.Logf("%d snapshots saw the counter move %d times during %d requests, %d inconsistent", reads, moving, served, torn)
	if moving < 2 {
		t.Errorf("the parent saw the child's counter move %d times", moving)
	}
	final := w.Snapshot()
	if err := checkChurn(final); err != nil || final.Requests != served {
		t.Errorf("final snapshot %+v (helper served %d): %v", final, served, err)
	}
}
