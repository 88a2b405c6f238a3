package status

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// notifySocket is a real sd_notify socket, as systemd opens for a
// Type=notify unit; it records every datagram.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string
}

func openNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := &notifySocket{path: filepath.Join(dir, "notify")}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, _, err := c.ReadFromUnix(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

// wait waits for a datagram, after the first skip ones, containing all of
// want, and returns its index.
func (n *notifySocket) wait(t *testing.T, skip int, want ...string) int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n.mu.Lock()
		msgs := append([]string(nil), n.msgs...)
		n.mu.Unlock()
		for i := skip; i < len(msgs); i++ {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(msgs[i], w)
			}
			if ok {
				return i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no notification with %q after #%d; got %q", want, skip, msgs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSystemdNotify drives phased as systemd's Type=notify would see it.
func TestSystemdNotify(t *testing.T) {
	n := openNotifySocket(t)
	dir := t.TempDir()
	addr := e2e.FreePort(t)
	e2e.WriteFile(t, dir, "public/hello.txt", "hello\n")
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(addr, ""))
	p := e2e.Start(t, dir, []string{"NOTIFY_SOCKET=" + n.path, "WATCHDOG_USEC=500000"}, "-f", conf)
	i := n.wait(t, 0, "READY=1", fmt.Sprintf("MAINPID=%d", p.PID()), "STATUS=generation 1 serving")
	n.wait(t, 0, "WATCHDOG=1") // every WatchdogSec/2 from the event loop
	for _, k := range e2e.Workers(p.PID()) {
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", k))
		if strings.Contains(string(env), "NOTIFY_SOCKET") {
			t.Fatalf("child %d inherited NOTIFY_SOCKET", k)
		}
	}
	if code, _, errOut := e2e.Run(t, dir, nil, "-f", conf, "-k", "graceful"); code != 0 {
		t.Fatalf("graceful: %s", errOut)
	}
	i = n.wait(t, i+1, "RELOADING=1", "MONOTONIC_USEC=")
	i = n.wait(t, i+1, "READY=1", "STATUS=generation 2 serving")

	var newPID int
	t.Cleanup(func() {
		for _, q := range append(e2e.Descendants(newPID), newPID) {
			if q > 0 && e2e.Alive(q) {
				e2e.Kill(t, q, syscall.SIGKILL)
			}
		}
	})
	if code, _, errOut := e2e.Run(t, dir, nil, "-f", conf, "-k", "upgrade"); code != 0 {
		t.Fatalf("upgrade: %s", errOut)
	}
	p.WaitExit(t, 15*time.Second)
	b, _ := os.ReadFile(filepath.Join(dir, "run/phased.pid"))
	fmt.Sscanf(string(b), "%d", &newPID)
	i = n.wait(t, i+1, fmt.Sprintf("MAINPID=%d", newPID))
	if code, _, errOut := e2e.Run(t, dir, nil, "-f", conf, "-k", "stop"); code != 0 {
		t.Fatalf("stop: %s", errOut)
	}
	n.wait(t, i+1, "STOPPING=1")
	e2e.WaitGone(t, []int{newPID}, 10*time.Second)
}

// TestSocketActivation: with LISTEN_PID/LISTEN_FDS, as systemd passes them,
// phased serves on the sockets it was given and binds nothing from listen,
// also after a graceful restart.
func TestSocketActivation(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	activated := ln.Addr().String()
	ln.Close() // f keeps the socket open
	dir := t.TempDir()
	unused := e2e.FreePort(t)
	e2e.WriteFile(t, dir, "public/hello.txt", "hello\n")
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(unused, ""))
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -f "$1"`, e2e.Binary(t), conf)
	cmd.Dir = dir
	cmd.Env = e2e.Environ(t)
	cmd.ExtraFiles = []*os.File{f}
	out := &strings.Builder{}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() {
		for _, p := range append(e2e.Descendants(cmd.Process.Pid), cmd.Process.Pid) {
			e2e.Kill(t, p, syscall.SIGKILL)
		}
		cmd.Wait()
	})
	e2e.WaitServing(t, "http://"+activated+"/hello.txt", 20*time.Second)
	if _, _, err := e2e.Get("http://" + unused + "/hello.txt"); err == nil {
		t.Fatal("the listen key's address was bound too")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, st, _ := e2e.Run(t, dir, nil, "-f", conf, "status")
		if strings.Count(st, "ready") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not started:\n%s", st)
		}
	}
	if code, _, errOut := e2e.Run(t, dir, nil, "-f", conf, "-k", "graceful"); code != 0 {
		t.Fatalf("graceful: %s", errOut)
	}
	e2e.WaitServing(t, "http://"+activated+"/hello.txt", 5*time.Second)
	if _, _, err := e2e.Get("http://" + unused + "/hello.txt"); err == nil {
		t.Fatal("a graceful restart bound the listen key's address")
	}
}
