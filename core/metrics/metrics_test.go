package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

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
	Handler(Source{Counters: k, Listeners: []string{"127.0.0.1:8080"}}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
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
