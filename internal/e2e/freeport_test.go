package e2e

import "testing"

// TestFreePortNeverRepeats: FreePort never returns an address twice in a
// test binary, though the kernel's free ports, asked for one after the
// other, repeat (500 draws from about 28,000 ports repeat some 4 times on
// average).
func TestFreePortNeverRepeats(t *testing.T) {
	seen := map[string]bool{}
	for range 500 {
		a := FreePort(t)
		if seen[a] {
			t.Fatalf("FreePort returned %s twice", a)
		}
		seen[a] = true
	}
}
