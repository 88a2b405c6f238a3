package mpm_test

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// exeResident is the resident KiB of pid's mappings of its executable, from
// /proc/PID/smaps.
func exeResident(t *testing.T, pid int) int {
	t.Helper()
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rss, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":"):
			in = len(fields) >= 6 && fields[5] == exe
		case in && len(fields) >= 2 && fields[0] == "Rss:":
			n, _ := strconv.Atoi(fields[1])
			rss += n
		}
	}
	return rss
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
