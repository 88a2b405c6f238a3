package gateway

import (
	"fmt"
	"strings"
	"testing"

	"github.com/phasedhq/phased/core/child/internal/testkit"
)

func TestLineLog(t *testing.T) {
	log, rec := testkit.New()
	l := NewLineLog(log.With("script", "/x.php"), "app stderr")
	for _, chunk := range []string{"first li", "ne\nsecond\r\n", "\n\nthird", " and last"} {
		if n, err := l.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
	}
	l.Close()
	var lines []string
	for _, r := range rec.Find("app stderr") {
		if r.Attrs["script"] != "/x.php" || r.Level.String() != "WARN" {
			t.Errorf("record %v", r)
		}
		lines = append(lines, r.Attrs["line"])
	}
	if got := strings.Join(lines, "|"); got != "first line|second|third and last" {
		t.Fatalf("lines %q", got)
	}
}

// TestLineLogBounds: a line past 4 KiB is cut, and past 100 lines nothing
// more is logged but one count of what was dropped.
func TestLineLogBounds(t *testing.T) {
	log, rec := testkit.New()
	l := NewLineLog(log, "app stderr")
	l.Write([]byte(strings.Repeat("x", 10000) + "\n"))
	for i := range 200 {
		fmt.Fprintf(l, "line %d\n", i)
	}
	l.Close()
	got := rec.Find("app stderr")
	if len(got) != maxLines {
		t.Fatalf("%d lines logged, want %d", len(got), maxLines)
	}
	if len(got[0].Attrs["line"]) != maxLineBytes || got[0].Attrs["cut"] != "true" {
		t.Fatalf("long line logged as %d bytes, cut=%q", len(got[0].Attrs["line"]), got[0].Attrs["cut"])
	}
	tr := rec.Find("app stderr truncated")
	if len(tr) != 1 || tr[0].Attrs["dropped_bytes"] == "" {
		t.Fatalf("truncation records: %v", tr)
	}
	if len(l.line) != 0 || cap(l.line) > 2*maxLineBytes {
		t.Fatalf("line buffer kept %d bytes, cap %d", len(l.line), cap(l.line))
	}
}
