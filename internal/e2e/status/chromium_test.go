package status

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// chromium is Debian's headless browser.
func chromium(t *testing.T) string { return e2e.Program(t, "chromium", "chromium") }

// TestStatusPageRendersInChromium opens /server-status in headless Chromium
// and checks that the rendered page carries the live scoreboard: as many
// slots as the generation has, in Apache's letters, the request being served
// among them, the per-worker table, PHP-FPM's pool fields with the live
// counts and the configured maxima.
func TestStatusPageRendersInChromium(t *testing.T) {
	browser := chromium(t)
	s := e2e.StartServer(t, "")
	for range 3 {
		e2e.Get(s.URL("/hello.txt"))
	}
	_, auto, _ := e2e.Get(s.URL("/server-status?auto"))
	m := regexp.MustCompile(`(?m)^Scoreboard: (.*)$`).FindStringSubmatch(auto)
	if m == nil {
		t.Fatalf("?auto without a scoreboard:\n%s", auto)
	}
	slots := len(m[1])

	profile := t.TempDir()
	shot := filepath.Join(t.TempDir(), "status.png")
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir=" + profile}
	run := func(extra ...string) string {
		cmd := exec.Command(browser, append(append(flags, extra...), s.URL("/server-status"))...)
		out, err := runWithin(cmd, 60*time.Second)
		if err != nil {
			t.Fatalf("chromium: %v\n%s", err, out)
		}
		return out
	}
	dom := run("--dump-dom")
	board := regexp.MustCompile(`<pre id="scoreboard">([._SRWKLCGI]+)</pre>`).FindStringSubmatch(dom)
	if board == nil || len(board[1]) != slots || !strings.Contains(board[1], "W") {
		t.Fatalf("rendered scoreboard %q, want %d slots with the W of this request; DOM:\n%.2000s", board, slots, dom)
	}
	if !strings.Contains(dom, `<table id="workers">`) || !strings.Contains(dom, "GET /server-status HTTP/1.1") {
		t.Fatalf("rendered page lacks the worker table:\n%.2000s", dom)
	}
	// The pool and maxima tables, one number a row, as rendered.
	rows := map[string]int{}
	for _, m := range regexp.MustCompile(`<tr id="([a-z-]+)"><th>[^<]+</th><td class="n">(\d+)</td></tr>`).FindAllStringSubmatch(dom, -1) {
		rows[m[1]], _ = strconv.Atoi(m[2])
	}
	for _, id := range []string{"accepted-conn", "listen-queue", "max-listen-queue", "listen-queue-len", "idle-processes",
		"active-processes", "total-processes", "max-children-reached", "slow-requests", "max-processes", "threads-per-child", "max-workers"} {
		if _, ok := rows[id]; !ok {
			t.Fatalf("rendered page lacks the %s row; DOM:\n%s", id, dom)
		}
	}
	_, js, _ := e2e.Get(s.URL("/server-status?json"))
	var st struct {
		MaxProcesses int `json:"max_processes"`
	}
	json.Unmarshal([]byte(js), &st)
	// Three files, ?auto and the page: five connections at least; the
	// page's own request is active; two children of 25 workers.
	if rows["accepted-conn"] < 5 || rows["active-processes"] < 1 || rows["idle-processes"] < 40 ||
		rows["total-processes"] != rows["idle-processes"]+rows["active-processes"] || rows["listen-queue-len"] != 511 ||
		rows["threads-per-child"] != 25 || rows["max-processes"] != st.MaxProcesses || st.MaxProcesses < 2 ||
		rows["max-workers"] != 25*st.MaxProcesses || rows["max-workers"] != slots {
		t.Fatalf("rendered pool and maxima %v (?json max_processes %d, %d slots)", rows, st.MaxProcesses, slots)
	}
	run("--screenshot="+shot, "--window-size=1200,900")
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
		t.Fatalf("no screenshot: %v", err)
	}
	if dir := os.Getenv("PHASED_TEST_SCREENSHOT_DIR"); dir != "" {
		b, _ := os.ReadFile(shot)
		os.WriteFile(filepath.Join(dir, "status.png"), b, 0o644)
	}
}

// runWithin runs cmd, killing it after d, and returns its combined output.
func runWithin(cmd *exec.Cmd, d time.Duration) (string, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return out.String(), os.ErrDeadlineExceeded
	}
}
