package mpm

import (
	"math"
	"net/netip"
	"testing"
	"time"
)

func TestValueErrors(t *testing.T) {
	for name, v := range map[string]any{
		"channel":       make(chan int),
		"uint overflow": uint64(math.MaxUint64),
		"int map keys":  map[int]string{1: "a"},
		"nested":        map[string]any{"a": []any{func() {}}},
	} {
		if _, err := valueToPB(v); err == nil {
			t.Errorf("%s: valueToPB(%T) succeeded", name, v)
		}
	}
}

func TestValueText(t *testing.T) {
	for v, want := range map[any]any{
		netip.MustParseAddr("127.0.0.1"): "127.0.0.1",
		2 * time.Second:                  "2s",
		float32(0.5):                     0.5,
		Worker:                           "worker",
	} {
		pv, err := valueToPB(v)
		if err != nil {
			t.Fatalf("valueToPB(%v): %v", v, err)
		}
		got, err := valueFromPB(pv)
		if err != nil || got != want {
			t.Errorf("round trip of %v (%T) = %v (%T), %v; want %v", v, v, got, got, err, want)
		}
	}
}

func TestZeroTime(t *testing.T) {
	if n := unixNano(time.Time{}); n != 0 {
		t.Errorf("unixNano(zero) = %d", n)
	}
	if tm := fromUnixNano(0); !tm.IsZero() {
		t.Errorf("fromUnixNano(0) = %v", tm)
	}
}

// TestMaintainRequestCarriesTheRecentSample: the fresher accept counts
// reach the plugin.
func TestMaintainRequestCarriesTheRecentSample(t *testing.T) {
	now := time.Unix(1700000000, 0)
	in := &MaintainRequest{Now: now, Recent: now.Add(-250 * time.Millisecond),
		Children: []Child{{Slot: 1, PID: 42, Connections: 900, RecentConnections: 700}}}
	out := maintainRequestFromPB(maintainRequestToPB(in))
	if !out.Recent.Equal(in.Recent) || len(out.Children) != 1 || out.Children[0].RecentConnections != 700 || out.Children[0].Connections != 900 {
		t.Fatalf("sent %+v, received %+v", in, out)
	}
	if out := maintainRequestFromPB(maintainRequestToPB(&MaintainRequest{Now: now})); !out.Recent.IsZero() {
		t.Fatalf("no sample: Recent %v, want the zero time", out.Recent)
	}
}
