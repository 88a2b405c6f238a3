package childrt

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/contract"
	"github.com/phasedhq/phased/internal/phase"
)

func appendLine(t *testing.T, path, line string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Error(err)
		return
	}
	f.WriteString(line + "\n")
	f.Close()
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
}

// TestServeHookOrder: exec child-init, OnInit, serving, OnExit (reversed),
// exec child-exit.
func TestServeHookOrder(t *testing.T) {
	rt, addr, events := testRuntime(t)
	trace := filepath.Join(t.TempDir(), "trace")
	rt.hooks = []contract.Hook{
		{Name: "exec-init", Phase: phase.ChildInit, Argv: []string{"sh", "-c", "echo exec-init >> " + trace}, Timeout: 5 * time.Second},
		{Name: "exec-exit", Phase: phase.ChildExit, Argv: []string{"sh", "-c", "echo exec-exit >> " + trace}, Timeout: 5 * time.Second},
	}
	c := App{
		Inits: []func(context.Context, *Runtime) error{
			func(ctx context.Context, got *Runtime) error {
				if got != rt {
					t.Error("OnInit got another runtime")
				}
				appendLine(t, trace, "app-init-1")
				return nil
			},
			func(context.Context, *Runtime) error { appendLine(t, trace, "app-init-2"); return nil },
		},
		Exits: []func(context.Context) error{
			func(context.Context) error { appendLine(t, trace, "app-exit-1"); return nil },
			func(context.Context) error { appendLine(t, trace, "app-exit-2"); return errors.New("ignored") },
		},
	}
	sigs := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- c.serveChild(rt, okHandler(), sigs) }()
	expect(t, events, contract.EventReady)
	dialAndGet(t, addr).Close()
	b, _ := os.ReadFile(trace)
	if got := strings.Fields(string(b)); strings.Join(got, " ") != "exec-init app-init-1 app-init-2" {
		t.Fatalf("while serving, trace = %v", got)
	}
	sigs <- syscall.SIGTERM
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	b, _ = os.ReadFile(trace)
	want := "exec-init app-init-1 app-init-2 app-exit-2 app-exit-1 exec-exit"
	if got := strings.Join(strings.Fields(string(b)), " "); got != want {
		t.Fatalf("trace = %q, want %q", got, want)
	}
	if rt.hooks == nil {
		t.Fatal("the runtime's exec hooks were not restored")
	}
}

// TestServeInitFailure: a failing OnInit stops the others, runs no OnExit,
// closes the listeners and returns ErrChildInit.
func TestServeInitFailure(t *testing.T) {
	rt, addr, _ := testRuntime(t)
	boom := errors.New("database unreachable")
	ran := ""
	c := App{
		Inits: []func(context.Context, *Runtime) error{
			func(context.Context, *Runtime) error { ran += "1"; return boom },
			func(context.Context, *Runtime) error { ran += "2"; return nil },
		},
		Exits: []func(context.Context) error{func(context.Context) error { ran += "x"; return nil }},
	}
	err := c.serveChild(rt, okHandler(), make(chan os.Signal, 1))
	if !errors.Is(err, ErrChildInit) || !errors.Is(err, boom) {
		t.Fatalf("err = %v, want ErrChildInit wrapping the cause", err)
	}
	if ran != "1" {
		t.Fatalf("ran %q, want only the first OnInit", ran)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the listener is still open after child-init failed")
	}
}

// TestServeStoppedDuringInit: a stop signal during OnInit cancels its
// context, and the child leaves without serving and without an error.
func TestServeStoppedDuringInit(t *testing.T) {
	rt, _, _ := testRuntime(t)
	sigs := make(chan os.Signal, 1)
	c := App{Inits: []func(context.Context, *Runtime) error{func(ctx context.Context, _ *Runtime) error {
		sigs <- syscall.SIGTERM
		<-ctx.Done()
		return ctx.Err()
	}}}
	done := make(chan error, 1)
	go func() { done <- c.serveChild(rt, okHandler(), sigs) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the child kept initialising after a stop signal")
	}
}

// TestServeStandalone: outside phased the app serves on its own listener,
// runs OnInit once, and shuts down gracefully on SIGTERM, then runs OnExit.
func TestServeStandalone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rt := &Runtime{DrainTimeout: 5 * time.Second, Log: newLogger(os.Stderr, "text", slog.LevelError),
		listeners: []net.Listener{ln}}
	inits, exits := 0, 0
	c := App{
		Inits: []func(context.Context, *Runtime) error{func(context.Context, *Runtime) error { inits++; return nil }},
		Exits: []func(context.Context) error{func(context.Context) error { exits++; return nil }},
	}
	sigs := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- c.serveStandalone(rt, okHandler(), sigs) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	sigs <- syscall.SIGTERM
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if inits != 1 || exits != 1 {
		t.Fatalf("OnInit ran %d times, OnExit %d, want 1 and 1", inits, exits)
	}
}

func TestDevAddr(t *testing.T) {
	for _, tc := range []struct{ opt, port, want string }{
		{"", "", "127.0.0.1:8080"},
		{"", "9000", "127.0.0.1:9000"},
		{"", "0.0.0.0:9000", "0.0.0.0:9000"},
		{":7000", "9000", ":7000"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			t.Setenv("PORT", tc.port)
			c := App{Addr: tc.opt}
			if got := c.devAddr(); got != tc.want {
				t.Fatalf("devAddr = %q, want %q", got, tc.want)
			}
		})
	}
}
