package appserver

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/procfs"
)

// TestMain lets this test binary be a fake preforking app server (see
// fakeServer) when it is run with APPSERVER_FAKE set.
func TestMain(m *testing.M) {
	switch os.Getenv("APPSERVER_FAKE") {
	case "master":
		fakeMaster()
	case "worker":
		fakeWorker()
	default:
		os.Exit(m.Run())
	}
}

// fakeMaster is a preforking app server's master: it listens on
// PHASED_APP_SOCKET, starts a worker in its own process group, and on its
// stop signal writes that it got it and exits, leaving its worker behind.
func fakeMaster() {
	trace := os.Getenv("APPSERVER_TRACE")
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGQUIT)
	w := exec.Command(os.Args[0])
	w.Env = append(os.Environ(), "APPSERVER_FAKE=worker")
	if err := w.Start(); err != nil {
		os.Exit(5)
	}
	appendLine(trace, fmt.Sprintf("worker %d", w.Process.Pid))
	ln, err := net.Listen("unix", os.Getenv("PHASED_APP_SOCKET"))
	if err != nil {
		os.Exit(6)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	appendLine(trace, "master got "+(<-sigs).String())
	os.Exit(0)
}

// fakeWorker writes each signal it gets; it never exits by itself.
func fakeWorker() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGQUIT)
	for sig := range sigs {
		appendLine(os.Getenv("APPSERVER_TRACE"), "worker got "+sig.String())
	}
}

func appendLine(path, line string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err == nil {
		fmt.Fprintln(f, line)
		f.Close()
	}
}

// TestStopSignalsTheMainProcess: Stop sends the stop signal to the app
// server's main process only, never to its workers (a Starman worker exits
// at once on QUIT, cutting its request, where its master's QUIT is
// graceful), and once the main process has exited kills what it left in
// its process group.
func TestStopSignalsTheMainProcess(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace")
	env := append(os.Environ(), "APPSERVER_FAKE=master", "APPSERVER_TRACE="+trace)
	srv, err := Start(t.Context(), Options{
		Command: []string{os.Args[0]}, Env: env, Listen: "socket", SocketDir: dir, Threads: 1,
		StartTimeout: 10 * time.Second, StopTimeout: 10 * time.Second, StopSignal: syscall.SIGQUIT,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.kill()
	b, _ := os.ReadFile(trace)
	worker, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(string(b)), "worker "))
	if err != nil || !procfs.Alive(worker) {
		t.Fatalf("no live worker in the trace: %q", b)
	}
	start := time.Now()
	srv.Stop()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Stop took %s: it waited for the stop timeout", took)
	}
	b, _ = os.ReadFile(trace)
	if got := strings.TrimSpace(string(b)); got != fmt.Sprintf("worker %d\nmaster got quit", worker) {
		t.Errorf("trace:\n%s\nwant the master alone to get QUIT", got)
	}
	for deadline := time.Now().Add(5 * time.Second); procfs.Alive(worker); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			syscall.Kill(worker, syscall.SIGKILL)
			t.Fatalf("the worker the app server left behind (%d) is still alive after Stop", worker)
		}
	}
}
