package childrt

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// exeRSS is the resident KiB of this process's read-only mappings of its
// executable, from /proc/self/smaps.
func exeRSS(t *testing.T) int {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
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
			in = len(fields) >= 6 && fields[5] == exe && (fields[1] == "r-xp" || fields[1] == "r--p")
		case in && len(fields) >= 2 && fields[0] == "Rss:":
			n, _ := strconv.Atoi(fields[1])
			rss += n
		}
	}
	return rss
}

// TestReleaseExecutablePages: the executable's read-only pages a process
// mapped are let go (and the process goes on running the code it needs).
func TestReleaseExecutablePages(t *testing.T) {
	before := exeRSS(t)
	n := releaseExecutablePages()
	after := exeRSS(t)
	t.Logf("executable mappings: %d KiB resident before, %d KiB after; %d bytes of mappings released", before, after, n)
	if n == 0 {
		t.Fatal("no mapping of the executable released")
	}
	// Other tests of this package run meanwhile and fault their code back
	// in (a loaded make test kept 52%); an idle child's own figure is
	// e2e's TestIdleChildMapsLittleOfTheBinary.
	if after >= before {
		t.Errorf("%d KiB of the executable still resident, no less than the %d KiB before", after, before)
	}
}
