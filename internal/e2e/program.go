package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var aptMu sync.Mutex

// Program finds prog, which Debian's package pkg provides (the list the
// suite needs is .ci/deps; make test installs it). When prog is missing and
// the test runs as root, Program installs pkg, once; when it still cannot
// be found the test skips loudly (see SkipLoudly), and fails under CI=true.
// prog is a name on PATH, an absolute path (or a pattern of one, for a
// program whose name carries its version: "/usr/sbin/php-fpm*", of which
// Program returns the last match), or interpreter:module (python3, ruby or
// perl, by name or absolute path, and a module it must load: "ruby:rack",
// "/usr/bin/python3:psycopg2" for the Python that Debian's gunicorn runs,
// whatever python3 is first on PATH), for which Program
// returns the interpreter's path.
func Program(t testing.TB, prog, pkg string) string {
	t.Helper()
	if p, ok := lookProgram(prog); ok {
		return p
	}
	if os.Getuid() == 0 {
		aptMu.Lock()
		if _, ok := lookProgram(prog); !ok {
			cmd := exec.Command("apt-get", "install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=300", pkg)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Logf("apt-get install %s: %v\n%s", pkg, err, out)
			}
		}
		aptMu.Unlock()
		if p, ok := lookProgram(prog); ok {
			return p
		}
	}
	SkipLoudly(t, fmt.Sprintf("%s (Debian's %s) is not installed and could not be: the test did NOT run", prog, pkg))
	return ""
}

func lookProgram(prog string) (string, bool) {
	if interp, mod, ok := strings.Cut(prog, ":"); ok {
		p, err := exec.LookPath(interp)
		if err != nil {
			return "", false
		}
		var args []string
		switch filepath.Base(interp) {
		case "python3":
			args = []string{"-c", "import " + mod}
		case "ruby":
			args = []string{"-e", "require '" + mod + "'"}
		case "perl":
			args = []string{"-M" + mod, "-e", "1"}
		default:
			return "", false
		}
		return p, exec.Command(p, args...).Run() == nil
	}
	if len(prog) > 0 && prog[0] == '/' {
		// A pattern names a program whose name carries its version
		// (/usr/sbin/php-fpm*): the last match, the newest by name.
		matches, _ := filepath.Glob(prog)
		if len(matches) == 0 {
			return prog, false
		}
		return matches[len(matches)-1], true
	}
	p, err := exec.LookPath(prog)
	return p, err == nil
}
