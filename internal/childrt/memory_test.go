package childrt

import (
	"testing"

	"github.com/phasedhq/phased/internal/procfs"
)

// exeRSS is the resident KiB of this process's mappings of its executable.
func exeRSS(t *testing.T) int {
	t.Helper()
	kib, err := procfs.ExeResident(0)
	if err != nil {
		t.Fatal(err)
	}
	return kib
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
