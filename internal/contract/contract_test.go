package contract

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/phasedhq/phased/internal/phase"
)

// full is a contract with every field set.
func full(t *testing.T) (Child, *Files) {
	t.Helper()
	var fs Files
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	c := Child{
		Generation: 3, Pass: 4, Slot: 2, MasterPID: 1234,
		MasterStart: time.Unix(1700000000, 0).UTC(), GenerationStart: time.Unix(1700000100, 0).UTC(),
		ConfigPath: "/run/phased/config-pass-4.json", MPM: "event", ServerVersion: "v1.2.3", Model: ModelEvent, Threads: 25, MaxConnections: 1000,
		AcceptMutex: "/run/phased/accept-3.lock",
		Listeners: []Listener{
			{Addr: "127.0.0.1:8080", File: fs.Add(ListenerFile(0), r)},
			{Addr: "[::1]:8081", File: fs.Add(ListenerFile(1), w)},
		},
		Scoreboard: fs.Add(FileScoreboard, r), Counters: fs.Add(FileCounters, r), Events: fs.Add(FileEvents, w),
		AccessLog: &AccessLog{File: fs.Add(FileAccessLog, w), Format: "combined"},
		Log:       Log{Format: "json", Level: "notice"},
		Timeouts:  Timeouts{ReadHeader: 10 * time.Second, Read: time.Minute, Write: time.Minute, Idle: 5 * time.Second, Drain: 30 * time.Second},
		Status:    Status{Path: "/server-status", Allow: []string{"127.0.0.0/8", "::1/128"}, Metrics: "/metrics", SlowRequest: time.Second},
		Hooks:     []Hook{{Name: "pool", Phase: phase.ChildInit, Argv: []string{"/bin/true"}, Dir: "/srv", Timeout: time.Second}},
		Static:    &Static{Root: "/srv/public", Listing: true},
		App: &App{Type: AppHTTP, Command: []string{"gunicorn", "--bind", "unix:{socket}", "app:app"}, Env: map[string]string{"X": "1"},
			Dir: "/run/phased/app-3-2", Listen: "socket", HealthCheck: "/up", StartTimeout: time.Minute, StopSignal: "QUIT",
			StopTimeout: 30 * time.Second, MaxBodySize: 100 << 20, BodyBufferSize: 1 << 20, ResponseBufferSize: 1 << 20, MaxTempFileSize: 1 << 30},
	}
	return c, &fs
}

// contents reads back what Encode wrote into its memory file.
func contents(t *testing.T, e *Encoded) []byte {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(e.memfd, 0, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	c, fs := full(t)
	e, err := Encode(c, fs)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if len(e.ExtraFiles) != 7 || e.ExtraFiles[6] != e.memfd {
		t.Fatalf("ExtraFiles = %d files, the contract last: %v", len(e.ExtraFiles), e.ExtraFiles)
	}
	if e.Env != Env+"=9" { // 3 + 6 named descriptors
		t.Errorf("Env = %q", e.Env)
	}
	got, err := Decode(contents(t, e))
	if err != nil {
		t.Fatal(err)
	}
	want := c
	want.Version = Version
	want.Files = map[string]int{"listener/0": 3, "listener/1": 4, "scoreboard": 5, "counters": 6, "events": 7, "access_log": 8}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", *got, want)
	}
	// The memory file is sealed: nobody rewrites a child's contract.
	if _, err := e.memfd.WriteAt([]byte("x"), 0); err == nil {
		t.Error("the contract's memory file takes writes")
	}
}

func TestEncodeRefusesBadFiles(t *testing.T) {
	c, fs := full(t)
	fs.Add(FileEvents, os.Stdin)
	if _, err := Encode(c, fs); err == nil || !strings.Contains(err.Error(), `descriptor "events" added twice`) {
		t.Errorf("duplicate descriptor: %v", err)
	}
	var none Files
	none.Add("x", nil)
	if _, err := Encode(c, &none); err == nil || !strings.Contains(err.Error(), `descriptor "x": no file`) {
		t.Errorf("nil file: %v", err)
	}
}

// TestMalformedIsAnError: whatever is wrong with a contract is an error
// naming it, never a zero value the child would serve with.
func TestMalformedIsAnError(t *testing.T) {
	c, fs := full(t)
	e, err := Encode(c, fs)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	good := contents(t, e)
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	for _, tt := range []struct {
		name string
		in   []byte
		want string
	}{
		{"not JSON", []byte("PHASED_CHILD_LISTENERS=127.0.0.1:80"), "contract: invalid character"},
		{"empty", nil, "contract: unexpected end of JSON input"},
		{"no version", edit(func(m map[string]any) { delete(m, "version") }), "contract: no version"},
		{"newer version", edit(func(m map[string]any) { m["version"] = Version + 1 }), fmt.Sprintf("contract version %d from the master, but this child knows only version %d", Version+1, Version)},
		{"app without a folder", edit(func(m map[string]any) { m["app"].(map[string]any)["dir"] = "" }), "app.dir: none"},
		{"app of an unknown type", edit(func(m map[string]any) { m["app"].(map[string]any)["type"] = "rack" }), `app.type "rack": want http, fastcgi or cgi`},
		{"app server without a command", edit(func(m map[string]any) { delete(m["app"].(map[string]any), "command") }), "app.command: none"},
		{"app stop signal", edit(func(m map[string]any) { m["app"].(map[string]any)["stop_signal"] = "KILL" }), `app.stop_signal "KILL": unknown`},
		{"version as text", edit(func(m map[string]any) { m["version"] = "1" }), "contract: json: cannot unmarshal string"},
		{"unknown field", edit(func(m map[string]any) { m["tls"] = true }), `contract: json: unknown field "tls"`},
		{"threads as text", edit(func(m map[string]any) { m["threads"] = "25" }), "cannot unmarshal string into Go struct field Child.threads"},
		{"no listeners", edit(func(m map[string]any) { m["listeners"] = []any{} }), "listeners: none"},
		{"listener without descriptor", edit(func(m map[string]any) { delete(m["files"].(map[string]any), "listener/1") }), `listeners[1] names descriptor "listener/1", which files does not number`},
		{"scoreboard without descriptor", edit(func(m map[string]any) { m["scoreboard"] = "board" }), `scoreboard names descriptor "board"`},
		{"descriptor below 3", edit(func(m map[string]any) { m["files"].(map[string]any)["events"] = 1 }), `files["events"] = 1: not an inherited descriptor`},
		{"unknown model", edit(func(m map[string]any) { m["model"] = "threads" }), `model "threads": want prefork, worker or event`},
		{"zero threads", edit(func(m map[string]any) { m["threads"] = 0 }), "threads 0: must be at least 1"},
		{"generation 0", edit(func(m map[string]any) { m["generation"] = 0 }), "generation 0: must be at least 1"},
		{"negative slot", edit(func(m map[string]any) { m["slot"] = -1 }), "slot -1: must not be negative"},
		{"log level", edit(func(m map[string]any) { m["log"] = map[string]any{"format": "json", "level": "loud"} }), `log.level: unknown log level "loud"`},
		{"log format", edit(func(m map[string]any) { m["log"] = map[string]any{"format": "xml", "level": "info"} }), `log.format "xml"`},
		{"negative timeout", edit(func(m map[string]any) { m["timeouts"].(map[string]any)["idle"] = -1 }), "must not be negative"},
		{"hook in a master phase", edit(func(m map[string]any) { m["hooks"].([]any)[0].(map[string]any)["phase"] = "post-config" }), `hooks[0] ("pool"): phase "post-config" does not run in children`},
		{"access log without format", edit(func(m map[string]any) { m["access_log"].(map[string]any)["format"] = "" }), "access_log: no format"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Decode(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Decode = %+v, %v; want an error with %q", c, err, tt.want)
			}
			if c != nil {
				t.Errorf("Decode returned a contract with its error: %+v", c)
			}
		})
	}
}

// TestReadFromDescriptor is the child's side: the contract arrives on the
// descriptor Env names, which Read closes, and Env is gone from the
// environment afterwards.
func TestReadFromDescriptor(t *testing.T) {
	c, fs := full(t)
	e, err := Encode(c, fs)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	dup, err := unix.Dup(int(e.memfd.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(Env, itoa(dup))
	got, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	if got.Slot != 2 || got.Model != ModelEvent || len(got.Listeners) != 2 {
		t.Errorf("Read = %+v", got)
	}
	if _, set := os.LookupEnv(Env); set {
		t.Errorf("%s still set after Read", Env)
	}
	if _, err := unix.FcntlInt(uintptr(dup), unix.F_GETFD, 0); err == nil {
		t.Errorf("Read left the contract's descriptor %d open", dup)
	}
}

func TestReadOutsidePhased(t *testing.T) {
	os.Unsetenv(Env)
	if _, err := Read(); err != ErrNotChild {
		t.Errorf("Read without %s = %v, want ErrNotChild", Env, err)
	}
	for _, v := range []string{"", "x", "1", "-4", "999999"} {
		t.Setenv(Env, v)
		if _, err := Read(); err == nil || err == ErrNotChild || !strings.Contains(err.Error(), Env) && !strings.Contains(err.Error(), "descriptor") {
			t.Errorf("%s=%q: Read = %v", Env, v, err)
		}
	}
}

func TestFileChecksTheDescriptor(t *testing.T) {
	c := Child{Files: map[string]int{"listener/0": 987}}
	if _, err := c.File("listener/0"); err == nil || !strings.Contains(err.Error(), `descriptor "listener/0" (987)`) {
		t.Errorf("File on a closed descriptor = %v", err)
	}
	if _, err := c.File("events"); err == nil || !strings.Contains(err.Error(), `no descriptor "events"`) {
		t.Errorf("File of an unknown name = %v", err)
	}
}

func TestParseEvent(t *testing.T) {
	for _, e := range []Event{EventReady, EventRetireRequest, EventRetireMaxConnections, EventRetiring, EventClosed} {
		if got, ok := ParseEvent(string(e) + "\n"); !ok || got != e {
			t.Errorf("ParseEvent(%q) = %q, %v", e, got, ok)
		}
	}
	if _, ok := ParseEvent("hello"); ok {
		t.Error("ParseEvent took an unknown line")
	}
	line := InitFailedLine("app.start_timeout: no answer;\n its last output: a | b " + strings.Repeat("x", 3000))
	why, ok := ParseInitFailed(line + "\n")
	if _, known := ParseEvent(line); !ok || known || strings.Contains(line, "\n") || len(why) > maxInitFailure+4 ||
		!strings.HasPrefix(why, "app.start_timeout: no answer; its last output: a | b xxx") {
		t.Errorf("InitFailedLine: %q, parsed %q %v", line, why, ok)
	}
	if _, ok := ParseInitFailed(string(EventReady)); ok {
		t.Error("ParseInitFailed took another event")
	}
}

func TestEnviron(t *testing.T) {
	got := Environ([]string{"PATH=/bin", "PHASED_MPM__NAME=event", "PHASED_CHILD_CONTRACT=7", "NOTIFY_SOCKET=/run/x", "WATCHDOG_USEC=1", "LISTEN_FDS=2", "HOME=/root", "MY_PHASED_X=1"})
	want := []string{"PATH=/bin", "HOME=/root", "MY_PHASED_X=1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Environ = %q, want %q", got, want)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":2,"generation":1,"model":"worker","threads":1,"listeners":[{"addr":"a","file":"l"}],"files":{"l":3},"log":{"format":"json","level":"info"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if (c == nil) == (err == nil) {
			t.Fatalf("Decode = %v, %v: exactly one must be set", c, err)
		}
		if c != nil && (c.Version != Version || len(c.Listeners) == 0 || c.Threads < 1) {
			t.Fatalf("Decode accepted %+v", c)
		}
	})
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
