package handover

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/core/listen"
	"github.com/phasedhq/phased/internal/contract"
)

// The test binary plays the new master (or a socket-activated one) when
// re-executed with modeEnv set.
const modeEnv = "PHASED_TEST_HANDOVER_MODE"

func TestMain(m *testing.M) {
	switch os.Getenv(modeEnv) {
	case "":
		os.Exit(m.Run())
	case "adopt":
		os.Exit(playNewMaster())
	case "activated":
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid())) // as systemd sets it after its fork
		lns, err := Activated()
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		for _, l := range lns {
			fmt.Printf("%s %s %q\n", l.Addr, l.Name, os.Getenv("LISTEN_FDS"))
		}
		os.Exit(0)
	}
}

// playNewMaster adopts what the test handed over, accepts one connection
// on every listener, reports what it got on stdout, and hands over.
func playNewMaster() int {
	a, err := Adopt()
	if err != nil {
		fmt.Println("adopt error:", err)
		return 1
	}
	fmt.Printf("pid=%d generation=%d started=%d activated=%v children=%s counters=%v tickets=%v\n", a.State.PID, a.State.Generation,
		a.State.Started.Unix(), a.State.Activated, a.State.Children, a.Counters != nil, a.Tickets != nil)
	for _, l := range a.Listeners {
		ln, err := net.FileListener(l.File)
		if err != nil {
			fmt.Println("listener error:", err)
			return 1
		}
		c, err := ln.Accept()
		if err != nil {
			fmt.Println("accept error:", err)
			return 1
		}
		c.Write([]byte(l.Addr + " " + l.Name))
		c.Close()
	}
	if err := a.Handover(); err != nil {
		fmt.Println("handover error:", err)
		return 1
	}
	fmt.Println("took over")
	return 0
}

func self(t *testing.T, mode string) (string, []string) {
	t.Helper()
	if testing.Short() {
		t.Skip("process-level test; skipped with -short")
	}
	return os.Args[0], append(os.Environ(), modeEnv+"="+mode, "GORACE=atexit_sleep_ms=0")
}

func openListener(t *testing.T, name string) *listen.Listener {
	t.Helper()
	l, err := listen.Open("127.0.0.1:0", 16)
	if err != nil {
		t.Fatal(err)
	}
	l.Addr, l.Name = l.Bound.String(), name
	t.Cleanup(func() { l.Close() })
	return l
}

// TestUpgradeRoundTrip: both ends of a binary upgrade. The new master gets
// every socket by name (and serves on it), the state, the counters; it
// reports ready, and takes over once the old one proceeds.
func TestUpgradeRoundTrip(t *testing.T) {
	exe, env := self(t, "adopt")
	lns := []*listen.Listener{openListener(t, ""), openListener(t, "web")}
	counters, err := os.CreateTemp(t.TempDir(), "counters")
	if err != nil {
		t.Fatal(err)
	}
	defer counters.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	st := State{PID: 4242, Generation: 7, Started: time.Unix(1700000000, 0), Activated: true, Children: json.RawMessage(`[{"pid":1}]`)}
	reported := make(chan error, 1)
	up, err := Start(exe, nil, append(env, "PHASED_INTERNAL_OTHER=x"), lns, Segments{Counters: counters, Tickets: counters}, st, outW, func(err error) { reported <- err })
	outW.Close() // the new master has its own copy
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lns {
		c, err := net.DialTimeout("tcp", l.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 64)
		n, _ := c.Read(b)
		c.Close()
		if got := string(b[:n]); got != l.Addr+" "+l.Name {
			t.Errorf("the new master says %q on %s, want %q", got, l.Addr, l.Addr+" "+l.Name)
		}
	}
	select {
	case err := <-reported:
		if err != nil {
			t.Fatalf("report: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no report")
	}
	if err := up.Proceed(); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(outR) // to EOF: the new master has exited
	out := string(b)
	want := `pid=4242 generation=7 started=1700000000 activated=true children=[{"pid":1}] counters=true tickets=true` + "\ntook over\n"
	if out != want {
		t.Errorf("the new master printed:\n%s\nwant:\n%s", out, want)
	}
}

// TestUpgradeVersionSkew: a new master given a hand-over of a version it
// does not speak fails, names both versions, and the old master hears why.
func TestUpgradeVersionSkew(t *testing.T) {
	exe, env := self(t, "adopt")
	readyR, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer readyR.Close()
	var files contract.Files
	files.Add(fileReport, readyW)
	b, _ := json.Marshal(State{Version: Version + 1, Files: files.Names()})
	enc, err := contract.Pack(envUpgrade, b, &files)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	cmd := exec.Command(exe)
	cmd.Env = append(env, enc.Env)
	cmd.ExtraFiles = enc.ExtraFiles
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readyW.Close()
	line, _ := bufio.NewReader(readyR).ReadString('\n')
	cmd.Wait()
	want := fmt.Sprintf("hand-over version %d from the old master, but this binary speaks version %d", Version+1, Version)
	if !strings.Contains(line, "error: binary upgrade: "+want) || !strings.Contains(out.String(), want) {
		t.Errorf("old master heard %q; new master said %q; want both to say %q", line, &out, want)
	}
}

// TestUpgradeNewMasterDies: a new master that exits before it reports is
// reported as such, never as ready.
func TestUpgradeNewMasterDies(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level test; skipped with -short")
	}
	reported := make(chan error, 1)
	_, err := Start("/bin/true", nil, os.Environ(), []*listen.Listener{openListener(t, "")}, Segments{}, State{}, os.Stderr, func(err error) { reported <- err })
	if err != nil {
		t.Fatal(err)
	}
	if err := <-reported; err == nil || !strings.Contains(err.Error(), "exited before it was ready") {
		t.Errorf("report = %v", err)
	}
	if _, err := Start("/nonexistent/phased", nil, nil, nil, Segments{}, State{}, os.Stderr, func(error) {}); err == nil || !strings.Contains(err.Error(), "/nonexistent/phased") {
		t.Errorf("Start of a missing binary = %v", err)
	}
}

func TestAdoptWithoutUpgrade(t *testing.T) {
	os.Unsetenv(envUpgrade)
	if a, err := Adopt(); a != nil || err != nil {
		t.Errorf("Adopt outside an upgrade = %v, %v", a, err)
	}
}

// TestActivated: sockets systemd passes keep their LISTEN_FDNAMES names,
// and the variables are gone once taken.
func TestActivated(t *testing.T) {
	exe, env := self(t, "activated")
	a, b := openListener(t, ""), openListener(t, "")
	cmd := exec.Command(exe)
	cmd.Env = append(env, "LISTEN_FDS=2", "LISTEN_FDNAMES=web:")
	cmd.ExtraFiles = []*os.File{a.File, b.File}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := fmt.Sprintf("%s web \"\"\n%s  \"\"\n", a.Addr, b.Addr)
	if string(out) != want {
		t.Errorf("activated:\n%s\nwant:\n%s", out, want)
	}
	cmd = exec.Command(exe)
	cmd.Env = append(env, "LISTEN_FDS=two")
	if out, _ := cmd.Output(); !strings.Contains(string(out), `error: socket activation: LISTEN_FDS="two"`) {
		t.Errorf("a bad LISTEN_FDS: %s", out)
	}
}

func TestActivatedNotForUs(t *testing.T) {
	t.Setenv("LISTEN_PID", "1")
	t.Setenv("LISTEN_FDS", "1")
	if lns, err := Activated(); lns != nil || err != nil {
		t.Errorf("sockets for another pid were taken: %v, %v", lns, err)
	}
}
