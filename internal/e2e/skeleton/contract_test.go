package skeleton

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phasedhq/phased/internal/contract"
	"github.com/phasedhq/phased/internal/e2e"
)

// TestChildRefusesAnotherContractVersion: a child given a contract of a
// version it does not know (here, from a newer master) exits at once with
// an error naming both versions, instead of serving with what it guessed.
func TestChildRefusesAnotherContractVersion(t *testing.T) {
	for _, tt := range []struct {
		name, contract, want string
	}{
		{"newer", `{"version": 99, "tls": {"cert": "x"}}`, "contract version 99 from the master, but this child knows only version 2"},
		{"malformed", `{"version": 2, "generation": "one"}`, "contract: json: cannot unmarshal string"},
		{"no listeners", `{"version": 2, "generation": 1, "model": "worker", "threads": 1, "log": {"format": "json", "level": "info"}, "files": {}}`, "contract: listeners: none"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "contract.json")
			if err := os.WriteFile(path, []byte(tt.contract), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cmd := exec.Command(e2e.Binary(t), contract.ChildArg)
			cmd.Env = append(e2e.Environ(t), contract.Env+"=3")
			cmd.ExtraFiles = []*os.File{f}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err = cmd.Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("child exit %v, stderr %q; want exit 1 naming %q", err, stderr.String(), tt.want)
			}
		})
	}
}
