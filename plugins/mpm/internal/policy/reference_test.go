package policy

import (
	"os"
	"regexp"
	"testing"

	"github.com/phasedhq/phased/sdk/mpm"
)

// TestReferenceConfigNamesEveryMPMKey: examples/phased.yaml, the complete
// reference configuration, names every key each built-in MPM reads (active
// or behind "#~"), aliases included.
func TestReferenceConfigNamesEveryMPMKey(t *testing.T) {
	b, err := os.ReadFile("../../../../examples/phased.yaml")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]map[string]bool{}
	knownKeys = func(name string, known map[string]bool) { keys[name] = known }
	defer func() { knownKeys = nil }()
	if _, err := ParsePrefork(nil); err != nil {
		t.Fatal(err)
	}
	for _, spec := range []ThreadedSpec{
		{Name: "worker", Model: mpm.Worker, MaxServerLimit: 20000, MaxThreadLimit: 20000},
		{Name: "event", Model: mpm.Event, MaxServerLimit: 20000, MaxThreadLimit: 100000, Event: true},
	} {
		if _, err := ParseThreaded(spec, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(keys) != 3 {
		t.Fatalf("keys of %d MPMs, want 3: %v", len(keys), keys)
	}
	for name, known := range keys {
		for key := range known {
			if key == "max_clients" {
				continue // the alias, named beside max_request_workers
			}
			if !regexp.MustCompile(`(?m)^\s*(#~)?` + key + `:`).Match(b) {
				t.Errorf("examples/phased.yaml does not name the %s MPM's %s", name, key)
			}
		}
	}
}
