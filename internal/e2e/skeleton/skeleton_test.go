package skeleton

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

func TestDefaultConfigServesWelcomePage(t *testing.T) {
	dir := t.TempDir()
	addr := e2e.FreePort(t)
	p := e2e.Start(t, dir, nil, "-c", "listen="+addr)
	e2e.WaitServing(t, "http://"+addr+"/", 20*time.Second)
	code, body, err := e2e.Get("http://" + addr + "/")
	if err != nil || code != 200 || !strings.Contains(body, "phased is running") {
		t.Fatalf("GET / = %d %v %.200q", code, err, body)
	}
	if _, err := os.Stat(filepath.Join(dir, "phased.pid")); err != nil {
		t.Fatalf("default pid file: %v", err)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.WaitExit(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, p.Log)
	}
}

func TestServesStaticFilesAndWritesAccessLog(t *testing.T) {
	s := e2e.StartServer(t, "")
	code, body, err := e2e.Get(s.URL("/hello.txt"))
	if err != nil || code != 200 || body != "hello\n" {
		t.Fatalf("GET /hello.txt = %d %v %q", code, err, body)
	}
	if code, _, _ := e2e.Get(s.URL("/../../etc/passwd")); code != 404 && code != 400 {
		t.Fatalf("traversal answered %d", code)
	}
	s.Signal(t, syscall.SIGTERM)
	s.WaitExit(t, 15*time.Second)
	b, err := os.ReadFile(filepath.Join(s.Dir, "logs/access.log"))
	if err != nil || !strings.Contains(string(b), `"GET /hello.txt HTTP/1.1" 200 6`) {
		t.Fatalf("access log: %v\n%s", err, b)
	}
}

// TestAccessLogOnStdoutAndStderr: access_log.path "stdout" and "stderr"
// are the master's own streams, as the config says, not files of those
// names in the working folder; and a graceful restart, which opens the
// logs again, leaves them working.
func TestAccessLogOnStdoutAndStderr(t *testing.T) {
	for _, stream := range []string{"stdout", "stderr"} {
		t.Run(stream, func(t *testing.T) {
			s := e2e.StartServer(t, "access_log: {path: "+stream+", format: common}\n")
			e2e.Get(s.URL("/hello.txt"))
			s.Log.Wait(t, `"GET /hello.txt HTTP/1.1" 200 6`, 1, 5*time.Second)
			if code, out, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful"); code != 0 {
				t.Fatalf("-k graceful: %d %s %s", code, out, errOut)
			}
			s.WaitLog(t, `"generation finished"`, 1, 10*time.Second)
			e2e.Get(s.URL("/hello.txt?after"))
			s.Log.Wait(t, `"GET /hello.txt?after HTTP/1.1" 200 6`, 1, 5*time.Second)
			if _, err := os.Stat(filepath.Join(s.Dir, stream)); err == nil {
				t.Errorf("the access log went to a file named %s", stream)
			}
		})
	}
}

func TestConfigTest(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "logs"), 0o755) // the access log's folder
	good := e2e.WriteFile(t, dir, "good.yaml", e2e.Config("127.0.0.1:8080", ""))
	unreadable := e2e.WriteFile(t, dir, "unreadable.yaml", e2e.Config("127.0.0.1:8080", ""))
	os.Chmod(unreadable, 0)
	tests := []struct {
		name, content string
		want          []string
	}{
		{"unknown key", "listn: [\"127.0.0.1:1\"]\n", []string{"bad.yaml", `"listn"`}},
		{"nested unknown key", "error_log: {lvl: debug}\n", []string{"bad.yaml", "error_log.lvl"}},
		{"bad duration", "graceful_shutdown_timeout: 3x\n", []string{"bad.yaml", "graceful_shutdown_timeout"}},
		{"bad address", "listen: [\"127.0.0.1\"]\n", []string{"bad.yaml", "listen"}},
		{"port out of range", "listen: [\"127.0.0.1:70000\"]\n", []string{"bad.yaml", "listen"}},
	}
	code, out, errOut := e2e.Run(t, dir, nil, "-f", good, "-t")
	if code != 0 || strings.TrimSpace(out) != "Syntax OK" {
		t.Fatalf("good config: exit %d, %q %q", code, out, errOut)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := e2e.WriteFile(t, dir, "bad.yaml", tt.content)
			code, out, errOut := e2e.Run(t, dir, nil, "-f", bad, "-t")
			if code != 1 || strings.Contains(out, "Syntax OK") {
				t.Fatalf("exit %d, stdout %q", code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("error %q does not name %q", errOut, w)
				}
			}
		})
	}
	if os.Geteuid() != 0 {
		code, _, errOut = e2e.Run(t, dir, nil, "-f", unreadable, "-t")
		if code != 1 || !strings.Contains(errOut, "unreadable.yaml") {
			t.Fatalf("unreadable: exit %d %q", code, errOut)
		}
	}
	// Root reads a mode-0 file, so also test what no one can read as a file.
	asDir := filepath.Join(dir, "folder.yaml")
	os.Mkdir(asDir, 0o755)
	code, _, errOut = e2e.Run(t, dir, nil, "-f", asDir, "-t")
	if code != 1 || !strings.Contains(errOut, "folder.yaml") || !strings.Contains(errOut, "is a directory") {
		t.Fatalf("unreadable (a folder): exit %d %q", code, errOut)
	}
	code, _, errOut = e2e.Run(t, dir, nil, "-f", filepath.Join(dir, "missing.yaml"), "-t")
	if code != 1 || !strings.Contains(errOut, "missing.yaml") {
		t.Fatalf("missing: exit %d %q", code, errOut)
	}
	code, _, errOut = e2e.Run(t, dir, nil, "-bogus")
	if code != 2 {
		t.Fatalf("usage error: exit %d %q", code, errOut)
	}
}

func TestEnvAndFlagOverrides(t *testing.T) {
	dir := t.TempDir()
	conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config("127.0.0.1:8080", ""))
	code, out, errOut := e2e.Run(t, dir, []string{"PHASED_MPM__START_SERVERS=4", "PHASED_LISTEN=127.0.0.1:9001,127.0.0.1:9002"}, "-f", conf, "-S")
	if code != 0 || !strings.Contains(out, "start_servers: 4") || !strings.Contains(out, "127.0.0.1:9002") {
		t.Fatalf("env override: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = e2e.Run(t, dir, []string{"PHASED_MPM__START_SERVERS=4"}, "-f", conf, "-c", "mpm.start_servers=3", "-S")
	if code != 0 || !strings.Contains(out, "start_servers: 3") {
		t.Fatalf("flag over env: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = e2e.Run(t, dir, []string{"PHASED_LISTN=x"}, "-f", conf, "-t")
	if code != 1 || !strings.Contains(errOut, "PHASED_LISTN") {
		t.Fatalf("unknown env key: exit %d %q", code, errOut)
	}
	// An override really changes what runs.
	addr := e2e.FreePort(t)
	e2e.WriteFile(t, dir, "public/x.txt", "x")
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	p := e2e.Start(t, dir, []string{"PHASED_LISTEN=" + addr}, "-f", conf, "-c", "mpm.start_servers=3")
	p.WaitLog(t, "resuming normal operations", 1, 20*time.Second)
	if n := len(e2e.Workers(p.PID())); n != 3 {
		t.Fatalf("%d children, want 3", n)
	}
	e2e.WaitServing(t, "http://"+addr+"/x.txt", 5*time.Second)
}

func TestAddressInUse(t *testing.T) {
	first := e2e.StartServer(t, "")
	dir := t.TempDir()
	conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(first.Addr, ""))
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	code, _, errOut := e2e.Run(t, dir, nil, "-f", conf)
	if code != 1 || !strings.Contains(errOut, first.Addr) || !strings.Contains(errOut, "address already in use") {
		t.Fatalf("exit %d: %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "run/phased.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("failed start left its pid file behind")
	}
}

func TestStalePidFileIsTakenOver(t *testing.T) {
	dir := t.TempDir()
	addr := e2e.FreePort(t)
	conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(addr, ""))
	// A pid that surely is no phased master: a process that has exited.
	e2e.WriteFile(t, dir, "run/phased.pid", "999999\n")
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	p := e2e.Start(t, dir, nil, "-f", conf)
	p.WaitLog(t, "resuming normal operations", 1, 20*time.Second)
	if p.Log.Count("stale pid file") != 1 {
		t.Fatalf("no warning about the stale pid file:\n%s", p.Log)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "run/phased.pid"))
	if strings.TrimSpace(string(b)) != fmt.Sprint(p.PID()) {
		t.Fatalf("pid file holds %q, want %d", b, p.PID())
	}
}

func TestSecondMasterRefused(t *testing.T) {
	s := e2e.StartServer(t, "")
	code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf)
	want := fmt.Sprintf("phased (pid %d) already running", s.PID())
	if code != 1 || !strings.Contains(errOut, want) {
		t.Fatalf("exit %d %q, want %q", code, errOut, want)
	}
	if code, _, _ := e2e.Get(s.URL("/hello.txt")); code != 200 {
		t.Fatal("first master hurt by the second")
	}
}

// TestStopRemovesPidFileAndChildren: -k stop, TERM and INT each stop the
// master, its children and its MPM plugin, and remove the pid file and the
// control socket.
func TestStopRemovesPidFileAndChildren(t *testing.T) {
	for _, how := range []string{"-k stop", "SIGTERM", "SIGINT"} {
		t.Run(how, func(t *testing.T) {
			s := e2e.StartServer(t, "")
			kids := e2e.Children(s.PID()) // serving children and the MPM plugin
			if len(kids) != 3 || len(e2e.Plugins(s.PID())) != 1 {
				t.Fatalf("children %v, want two serving children and an MPM plugin", kids)
			}
			switch how {
			case "SIGTERM":
				s.Signal(t, syscall.SIGTERM)
			case "SIGINT":
				s.Signal(t, syscall.SIGINT)
			default:
				code, out, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "stop")
				if code != 0 {
					t.Fatalf("-k stop: exit %d %s %s", code, out, errOut)
				}
			}
			if c := s.WaitExit(t, 10*time.Second); c != 0 {
				t.Fatalf("master exit %d", c)
			}
			e2e.WaitGone(t, kids, 5*time.Second)
			for _, f := range []string{"run/phased.pid", "run/phased.sock"} {
				if _, err := os.Stat(filepath.Join(s.Dir, f)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s left behind", f)
				}
			}
			code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "stop")
			if code != 1 || !strings.Contains(errOut, "not running") {
				t.Fatalf("stop with no master: exit %d %q", code, errOut)
			}
		})
	}
}

func TestKilledMasterLeavesNoChild(t *testing.T) {
	s := e2e.StartServer(t, "")
	kids := e2e.Children(s.PID()) // serving children and the MPM plugin
	if len(e2e.Plugins(s.PID())) != 1 {
		t.Fatalf("no MPM plugin process among %v", kids)
	}
	if len(kids) == 0 {
		t.Fatal("no children")
	}
	s.Signal(t, syscall.SIGKILL)
	s.WaitExit(t, 5*time.Second)
	e2e.WaitGone(t, kids, 10*time.Second)
	// And a new master starts on the same port at once.
	p := e2e.Start(t, s.Dir, nil, "-f", s.Conf)
	p.WaitLog(t, "resuming normal operations", 1, 20*time.Second)
}

func TestStartDaemonStatusStop(t *testing.T) {
	dir := t.TempDir()
	addr := e2e.FreePort(t)
	e2e.WriteFile(t, dir, "public/hello.txt", "hello\n")
	conf := e2e.WriteFile(t, dir, "phased.yaml", e2e.Config(addr, "")+"\n")
	// The daemon logs to a file, as Apache's ErrorLog does.
	os.WriteFile(conf, []byte(strings.Replace(e2e.Config(addr, ""), "path: stderr", "path: logs/error.log", 1)), 0o644)
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	code, out, errOut := e2e.Run(t, dir, nil, "-f", conf, "-k", "start")
	if code != 0 || !strings.Contains(out, "started") {
		t.Fatalf("-k start: exit %d %q %q", code, out, errOut)
	}
	var pid int
	fmt.Sscanf(out, "phased (pid %d) started", &pid)
	t.Cleanup(func() {
		for _, k := range append(e2e.Descendants(pid), pid) {
			if k > 0 && e2e.Alive(k) {
				e2e.Kill(t, k, syscall.SIGKILL)
			}
		}
	})
	if code, _, err := e2e.Get("http://" + addr + "/hello.txt"); code != 200 {
		t.Fatalf("daemon not serving: %d %v", code, err)
	}
	code, _, errOut = e2e.Run(t, dir, nil, "-f", conf, "-k", "start")
	if code != 1 || !strings.Contains(errOut, "running") {
		t.Fatalf("second -k start: exit %d %q", code, errOut)
	}
	for range 4 {
		e2e.Get("http://" + addr + "/hello.txt")
	}
	code, out, _ = e2e.Run(t, dir, nil, "-f", conf, "status")
	if code != 0 || strings.Count(out, "ready") != 2 || !strings.Contains(out, "BUSY  REQUESTS  BYTES") {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	// --json: each child's requests and bytes, from the scoreboard; the
	// five GETs of /hello.txt (6 bytes each) add up.
	code, out, _ = e2e.Run(t, dir, nil, "-f", conf, "status", "--json")
	var st struct {
		Children []struct {
			Requests, Bytes uint64
		} `json:"children"`
	}
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || len(st.Children) != 2 {
		t.Fatalf("status --json: exit %d %v\n%s", code, err, out)
	}
	if r, b := st.Children[0].Requests+st.Children[1].Requests, st.Children[0].Bytes+st.Children[1].Bytes; r != 5 || b != 30 {
		t.Fatalf("status --json counts %d requests, %d bytes; want 5 and 30\n%s", r, b, out)
	}
	kids := e2e.Descendants(pid)
	code, _, errOut = e2e.Run(t, dir, nil, "-f", conf, "-k", "stop")
	if code != 0 {
		t.Fatalf("-k stop: exit %d %q", code, errOut)
	}
	e2e.WaitGone(t, append(kids, pid), 10*time.Second)
	b, _ := os.ReadFile(filepath.Join(dir, "logs/error.log"))
	if !strings.Contains(string(b), "resuming normal operations") {
		t.Fatalf("error log:\n%s", b)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := e2e.Run(t, t.TempDir(), nil, "version")
	if code != 0 || !strings.HasPrefix(out, "phased ") {
		t.Fatalf("version: %d %q", code, out)
	}
	code, flag, _ := e2e.Run(t, t.TempDir(), nil, "--version")
	if code != 0 || flag != out {
		t.Fatalf("--version: %d %q, want %q as phased version says", code, flag, out)
	}
}

func TestHardRestartStopsOldChildrenAtOnce(t *testing.T) {
	s := e2e.StartServer(t, "")
	old := e2e.Workers(s.PID())
	code, out, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "restart")
	if code != 0 || !strings.Contains(out, "generation 2") {
		t.Fatalf("-k restart: exit %d %q %q", code, out, errOut)
	}
	e2e.WaitGone(t, old, 3*time.Second)
	if code, _, err := e2e.Get(s.URL("/hello.txt")); code != 200 {
		t.Fatalf("after restart: %d %v", code, err)
	}
}

func TestSlowClientsAreBounded(t *testing.T) {
	s := e2e.StartServer(t, "timeouts: {read_header: 500ms, idle: 500ms}\n")
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n") // and never the blank line
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	io.Copy(io.Discard, c) // returns when the server closes the connection
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("a client that never finished its headers was held %s", d)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	root := filepath.Join("..", "..", "..", "examples")
	code, out, errOut := e2e.Run(t, ".", nil, "-f", filepath.Join(root, "phased.yaml"), "-t")
	if code != 0 || !strings.Contains(out, "Syntax OK") {
		t.Fatalf("examples/phased.yaml: exit %d %q %q", code, out, errOut)
	}
}

func TestDeadMastersRuntimeFolderIsRemoved(t *testing.T) {
	// What a master killed with -9 leaves behind: its runtime folder, with
	// the plugins' socket folder inside, in the temporary directory the
	// next master gets too.
	dead := filepath.Join(e2e.ProcessTempDir(t), "phased-999999-e2etest")
	os.MkdirAll(filepath.Join(dead, "plugins", "plugin-dir123"), 0o700)
	t.Cleanup(func() { os.RemoveAll(dead) })
	s := e2e.StartServer(t, "")
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale runtime folder still there: %v", err)
	}
	if s.Log.Count(`"path":"`+dead+`"`) != 1 {
		t.Fatalf("not logged:\n%s", s.Log)
	}
}

// TestConfigTestFailsWhatTheStartFails: `phased -t` refuses what would fail
// the start (a user or group that does not exist, a log folder that is
// missing, an MPM or hook plugin that is missing or does not answer),
// naming the key, and the start fails the same way.
func TestConfigTestFailsWhatTheStartFails(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "public"), 0o755)
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	e2e.WriteFile(t, dir, "mute", "#!/bin/sh\nexit 0\n")
	os.Chmod(filepath.Join(dir, "mute"), 0o755)
	for _, tt := range []struct{ name, extra, key string }{
		{"user", "user: no-such-user-phased\n", "user"},
		{"group", "user: nobody\ngroup: no-such-group-phased\n", "group"},
		{"error log folder", "error_log: {path: missing/error.log}\n", "error_log.path"},
		{"access log folder", "access_log: {path: missing/access.log}\n", "access_log.path"},
		{"missing MPM", "mpm: {name: ./no-such-mpm}\n", "mpm.name"},
		{"MPM that does not answer", "mpm: {name: ./mute}\n", "mpm.name"},
		{"missing hook plugin", "hooks: [{name: warm, plugin: ./no-such-hook, phase: post-config}]\n", "hooks[0].plugin"},
		{"hook plugin that does not answer", "hooks: [{name: warm, plugin: ./mute, phase: shutdown}]\n", "hooks[0].plugin"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conf := e2e.WriteFile(t, dir, "bad.yaml", e2e.Config(e2e.FreePort(t), tt.extra))
			code, out, errOut := e2e.Run(t, dir, nil, "-f", conf, "-t")
			if code != 1 || strings.Contains(out, "Syntax OK") || !strings.Contains(errOut, tt.key+":") {
				t.Fatalf("-t: exit %d, stdout %q, stderr %q; want 1 and an error naming %s", code, out, errOut, tt.key)
			}
			p := e2e.Start(t, dir, nil, "-f", conf)
			if code := p.WaitExit(t, 30*time.Second); code != 1 {
				t.Fatalf("start: exit %d, want 1; log:\n%s", code, p.Log)
			}
		})
	}
}
