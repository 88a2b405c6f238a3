package cgi

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// launchArg, as the first argument of a binary that links this package,
// makes it the launcher of the script named by the second argument (see
// the package documentation).
const launchArg = "phased-cgi-launch"

// pidLine starts the line the launcher writes first to its stderr: the
// process group the script will run in.
const pidLine = "phased-cgi-launch pgid "

func init() {
	if len(os.Args) == 3 && os.Args[1] == launchArg {
		os.Exit(launch(os.Args[2]))
	}
}

// launch puts the process in a session and process group of its own, tells
// the handler the group's id on stderr, and replaces itself with script.
// It returns only when that fails.
func launch(script string) int {
	if _, err := syscall.Setsid(); err != nil {
		if err := syscall.Setpgid(0, 0); err != nil {
			fmt.Fprintf(os.Stderr, "cgi: no process group of its own for %s: %v\n", script, err)
			return 126
		}
	}
	fmt.Fprintf(os.Stderr, "%s%d\n", pidLine, syscall.Getpgrp())
	env := os.Environ()
	kept := env[:0]
	for _, kv := range env {
		if !blanked(kv) {
			kept = append(kept, kv)
		}
	}
	err := syscall.Exec(script, []string{script}, kept)
	fmt.Fprintf(os.Stderr, "cgi: cannot run %s: %v\n", script, err)
	return 127
}

// blanked reports whether kv is one of the variables that net/http/cgi
// always copies from the child's environment, set empty by the handler so
// that the script has none.
func blanked(kv string) bool {
	name, value, _ := strings.Cut(kv, "=")
	return value == "" && name == "LD_LIBRARY_PATH"
}

// selfExe is the file name under which the running binary can start itself
// again, even when its file was replaced since (a binary upgrade).
func selfExe() (string, error) {
	if runtime.GOOS == "linux" {
		return "/proc/self/exe", nil
	}
	return os.Executable()
}

// parsePidLine returns the process group id in a launcher's first line.
func parsePidLine(line string) (int, bool) {
	rest, ok := strings.CutPrefix(line, pidLine)
	if !ok {
		return 0, false
	}
	pgid, err := strconv.Atoi(strings.TrimSuffix(rest, "\n"))
	return pgid, err == nil && pgid > 1
}
