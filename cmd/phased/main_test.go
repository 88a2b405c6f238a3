package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestMasterDoesNotLinkPgx: the master cannot hold a database connection
// of its own: the phased command's dependencies contain no PostgreSQL
// driver. (internal/e2e/apps checks the binary its tests run too.)
func TestMasterDoesNotLinkPgx(t *testing.T) {
	drivers := []string{"github.com/jackc/", "github.com/lib/pq", "database/sql"}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/phasedhq/phased/core/master") {
		t.Fatalf("go list -deps . does not list core/master: %q", deps)
	}
	for _, d := range deps {
		for _, drv := range drivers {
			if strings.HasPrefix(d, drv) {
				t.Errorf("phased depends on %s", d)
			}
		}
	}
}
