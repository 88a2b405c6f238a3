package master

import (
	"strings"
	"testing"
)

// TestWriteStatusBackoff: the back-off line appears while children keep
// dying, and never as "0 in a row".
func TestWriteStatusBackoff(t *testing.T) {
	for _, tt := range []struct {
		crashes int
		want    bool
	}{{0, false}, {2, true}} {
		var b strings.Builder
		WriteStatus(&b, Status{Crashes: tt.crashes, LastExit: "exit status 1", BackoffUntil: "2030-01-01T00:00:00Z"})
		if got := strings.Contains(b.String(), "children keep dying"); got != tt.want {
			t.Errorf("%d crashes: back-off line shown %v, want %v:\n%s", tt.crashes, got, tt.want, b.String())
		}
		if strings.Contains(b.String(), "(0 in a row") {
			t.Errorf("%d crashes:\n%s", tt.crashes, b.String())
		}
	}
}
