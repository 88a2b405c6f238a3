package childrt

import (
	"testing"
	"time"
)

// TestWarnEvery: the first event warns at once; later ones within the
// interval are counted and warned about together once it has passed.
func TestWarnEvery(t *testing.T) {
	w := warnEvery{every: time.Minute}
	now := time.Now()
	if n, ok := w.add(1, now); !ok || n != 1 {
		t.Fatalf("first: %d %v", n, ok)
	}
	if _, ok := w.add(2, now.Add(time.Second)); ok {
		t.Fatal("warned again within the interval")
	}
	if _, ok := w.add(3, now.Add(59*time.Second)); ok {
		t.Fatal("warned again within the interval")
	}
	if n, ok := w.add(1, now.Add(time.Minute)); !ok || n != 6 {
		t.Fatalf("after the interval: %d %v, want 6 true", n, ok)
	}
}
