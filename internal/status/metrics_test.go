package status

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/scoreboard"
)

// TestCausesAndGenerations: every recycle and exit cause is its own series,
// children are split by generation, and the older by-event family still
// adds the causes up.
func TestCausesAndGenerations(t *testing.T) {
	k, err := scoreboard.CreateCounters()
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	for c, n := range map[scoreboard.Counter]uint64{
		scoreboard.Spawned: 20, scoreboard.ExitedNormally: 9, scoreboard.ExitedSignal: 2, scoreboard.ExitedCrashed: 3,
		scoreboard.ExitedChildInit: 4, scoreboard.RecycledSelf: 1, scoreboard.RecycledMaxConnections: 5,
		scoreboard.RecycledMemory: 6, scoreboard.RecycledCommand: 7, scoreboard.RetiredByMPM: 8,
	} {
		k.Add(c, n)
	}
	var tally scoreboard.ChildTally
	tally.Add(3, false, false)
	tally.Add(3, true, false)
	tally.Add(2, true, true)
	k.SetGenerations(&tally)

	rec := httptest.NewRecorder()
	module(t, k).Wrap(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`phased_children_spawned_total 20`,
		`phased_children_recycled_total{cause="max_connections"} 5`,
		`phased_children_recycled_total{cause="max_memory"} 6`,
		`phased_children_recycled_total{cause="signal"} 1`,
		`phased_children_recycled_total{cause="recycle"} 7`,
		`phased_children_recycled_total{cause="mpm"} 8`,
		`phased_children_exited_total{cause="normal"} 9`,
		`phased_children_exited_total{cause="signal"} 2`,
		`phased_children_exited_total{cause="status"} 3`,
		`phased_children_exited_total{cause="child_init"} 4`,
		`phased_children_events_total{event="exited_unexpectedly"} 9`,
		`phased_children_events_total{event="recycled"} 6`,
		`phased_children_events_total{event="retired_by_mpm"} 14`,
		`phased_children_by_state{generation="3",state="starting"} 1`,
		`phased_children_by_state{generation="3",state="ready"} 1`,
		`phased_children_by_state{generation="3",state="retiring"} 0`,
		`phased_children_by_state{generation="2",state="retiring"} 1`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("no %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}

// module is a status module over a fresh 2x2 scoreboard and k, open to
// httptest's client address.
func module(t *testing.T, k *scoreboard.Counters) *Module {
	t.Helper()
	b, err := scoreboard.Create("status-test", 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	m, err := New(Options{Path: "/server-status", MetricsPath: "/metrics", Allow: []string{"192.0.2.0/24"}, MPM: "worker",
		Generation: 3, Listeners: []string{"127.0.0.1:8080"}, Board: b, Counters: k})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestWrap: the module answers its two paths to allowed networks only, and
// passes every other request on.
func TestWrap(t *testing.T) {
	k, err := scoreboard.CreateCounters()
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	m := module(t, k)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app "+r.URL.Path) })
	for _, tt := range []struct {
		path, remote string
		code         int
		body         string
	}{
		{"/server-status?auto", "192.0.2.7:1", 200, "Scoreboard: "},
		{"/metrics", "192.0.2.7:1", 200, "phased_workers{class=\"idle\"}"},
		{"/server-status", "203.0.113.9:1", 403, "not open to your address"},
		{"/metrics", "203.0.113.9:1", 403, "not open to your address"},
		{"/index.html", "203.0.113.9:1", 200, "app /index.html"},
	} {
		req := httptest.NewRequest("GET", tt.path, nil)
		req.RemoteAddr = tt.remote
		rec := httptest.NewRecorder()
		m.Wrap(next).ServeHTTP(rec, req)
		if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.body) {
			t.Errorf("%s from %s: %d %q, want %d with %q", tt.path, tt.remote, rec.Code, rec.Body.String(), tt.code, tt.body)
		}
	}
	if !m.Serves("/metrics") || !m.Serves("/server-status") || m.Serves("/") || m.Serves("") {
		t.Error("Serves answers wrongly")
	}
	if m, err := New(Options{}); m != nil || err != nil {
		t.Errorf("New with no paths = %v, %v; want nil, nil", m, err)
	}
	if _, err := New(Options{Path: "/s", Allow: []string{"10.0.0.0/33"}, Board: m.board, Counters: k}); err == nil || !strings.Contains(err.Error(), "status.allow") {
		t.Errorf("New with a bad network = %v", err)
	}
}

// TestClientColumn: the page shows each worker's client (mod_status's
// Client), in HTML and ?json, as the scoreboard recorded it.
func TestClientColumn(t *testing.T) {
	k, err := scoreboard.CreateCounters()
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	m := module(t, k)
	b := m.board.(*scoreboard.Board)
	b.Proc(0).SetPID(os.Getpid())
	b.Worker(0, 0).StartRequest(time.Now(), netip.MustParseAddr("198.51.100.23"), "GET", "/x", "HTTP/1.1")
	b.Worker(0, 1).StartRequest(time.Now(), netip.Addr{}, "GET", "/y", "HTTP/1.1")
	for q, want := range map[string]string{"": "<td>198.51.100.23</td><td>GET /x HTTP/1.1</td>", "?json": `"client": "198.51.100.23"`} {
		req := httptest.NewRequest("GET", "/server-status"+q, nil)
		req.RemoteAddr = "192.0.2.7:1"
		rec := httptest.NewRecorder()
		m.Wrap(http.NotFoundHandler()).ServeHTTP(rec, req)
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("status%s lacks %q:\n%s", q, want, rec.Body.String())
		}
	}
}
