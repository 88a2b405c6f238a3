package e2e

import (
	"net"
	"strconv"
	"testing"
)

// TestFreePortNeverRepeats: FreePort never returns an address twice in a
// test binary, though random draws repeat (500 draws from about 11,800
// ports repeat some 10 times on average), and every port is below the
// kernel's ephemeral range, where no client's connection can take it, and
// free: one that somebody listens on is never returned.
func TestFreePortNeverRepeats(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(freePortLow))
	if err == nil {
		defer busy.Close()
	}
	seen := map[string]bool{}
	for range 500 {
		a := FreePort(t)
		if seen[a] {
			t.Fatalf("FreePort returned %s twice", a)
		}
		seen[a] = true
		_, port, _ := net.SplitHostPort(a)
		if p, _ := strconv.Atoi(port); p < freePortLow || p >= freePortHigh || p >= 32768 {
			t.Fatalf("FreePort returned %s: not in [%d, %d), below the ephemeral range", a, freePortLow, freePortHigh)
		}
		if busy != nil && a == busy.Addr().String() {
			t.Fatalf("FreePort returned %s, where a listener is", a)
		}
	}
}
