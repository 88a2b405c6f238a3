package mpm_test

import (
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
	"github.com/phasedhq/phased/internal/procfs"
)

// exeResident is the resident KiB of pid's mappings of its executable.
func exeResident(t *testing.T, pid int) int {
	t.Helper()
	kib, err := procfs.ExeResident(pid)
	if err != nil {
		t.Fatal(err)
	}
	return kib
}

// TestIdleChildMapsLittleOfTheBinary: once ready, a child lets go of the
// pages of the phased binary its start touched, so an idle child maps a
// small part of what its master maps (before, 12.9 of the master's ~15
// MB), and serves as before.
func TestIdleChildMapsLittleOfTheBinary(t *testing.T) {
	for _, mpm := range []string{"event", "prefork"} {
		t.Run(mpm, func(t *testing.T) {
			s := e2e.StartMPM(t, "mpm: {name: "+mpm+", start_servers: 2}\n")
			s.WaitChildren(t, 2, 10*time.Second)
			time.Sleep(500 * time.Millisecond) // ready, then released
			master := exeResident(t, s.PID())
			for _, c := range e2e.Workers(s.PID()) {
				child := exeResident(t, c)
				t.Logf("child %d maps %d KiB of the binary, its master %d KiB", c, child, master)
				if child*3 > master {
					t.Errorf("idle child %d maps %d KiB of the binary, more than a third of its master's %d KiB", c, child, master)
				}
			}
			if code, body, err := e2e.Get(s.URL("/hello.txt")); err != nil || code != 200 || body != "hello\n" {
				t.Fatalf("GET /hello.txt: %d %q %v", code, body, err)
			}
		})
	}
}
