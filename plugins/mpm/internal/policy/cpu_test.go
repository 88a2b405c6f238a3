package policy

import (
	"testing"
	"time"
)

// TestCPUMeter: the first reading has nothing to compare with; once the
// machine's counters move (they tick every 10 ms), a reading is a share
// between 0 and 1 of its CPU time, and this test's spinning makes it more
// than none.
func TestCPUMeter(t *testing.T) {
	var m cpuMeter
	if _, ok := m.busy(); ok {
		t.Fatal("first reading reported a share")
	}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		for spin := time.Now().Add(50 * time.Millisecond); time.Now().Before(spin); {
		}
		if busy, ok := m.busy(); ok {
			if busy <= 0 || busy > 1 {
				t.Fatalf("busy %v while this test spun a CPU", busy)
			}
			return
		}
	}
	t.Fatal("no reading of /proc/stat in 2 s")
}
