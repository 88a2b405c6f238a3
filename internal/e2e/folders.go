package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// The harness keeps all it makes on disk in one folder per test process,
// its root, phased-e2e-PID-* in the temporary directory: the binaries of
// Binary and Build, the folders of OpenDir and of ProcessTempDir. Main
// removes it once the package's tests have run.

var (
	mainCalled atomic.Bool

	rootMu  sync.Mutex
	rootDir string
	rootErr error

	tmpMu   sync.Mutex
	tmpDirs = map[testing.TB]string{}
)

// rootMark is a file in every root: a folder without it is not the
// harness's, and stale roots are removed only with it.
const rootMark = ".phased-e2e"

// Main runs the tests of a package that uses the harness, then removes the
// harness's folder: what Binary and Build built (some 30 MB a package), the
// folders of OpenDir and ProcessTempDir. Every such package calls it from
// its TestMain:
//
//	func TestMain(m *testing.M) { e2e.Main(m) }
//
// Binary fails the tests of a package whose TestMain does not.
func Main(m *testing.M) {
	mainCalled.Store(true)
	code := m.Run()
	rootMu.Lock()
	if rootDir != "" {
		if err := os.RemoveAll(rootDir); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: removing %s: %v\n", rootDir, err)
		}
	}
	rootMu.Unlock()
	os.Exit(code)
}

// root returns the harness's folder, made on first use: every user may
// search it, since children may run as another user (user: nobody) and must
// reach the binary and their master's runtime folder.
func root() (string, error) {
	rootMu.Lock()
	defer rootMu.Unlock()
	if rootDir != "" || rootErr != nil {
		return rootDir, rootErr
	}
	if !mainCalled.Load() {
		rootErr = errors.New("e2e: the test package's TestMain must call e2e.Main, which removes what the harness leaves on disk")
		return "", rootErr
	}
	removeStaleRoots()
	dir, err := os.MkdirTemp("", fmt.Sprintf("phased-e2e-%d-", os.Getpid()))
	if err == nil {
		rootDir = dir
		err = os.Chmod(dir, 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, rootMark), nil, 0o644)
	}
	rootErr = err
	return rootDir, rootErr
}

// removeStaleRoots removes the roots of test processes that ended without
// Main's clean-up (a test binary killed on a timeout): a folder named
// phased-e2e-PID-*, marked as a root, whose PID is no live process.
func removeStaleRoots() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "phased-e2e-*-*"))
	for _, d := range dirs {
		parts := strings.SplitN(filepath.Base(d), "-", 4)
		if len(parts) != 4 {
			continue
		}
		pid, err := strconv.Atoi(parts[2])
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, rootMark)); err != nil {
			continue // not a root of this harness
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // its test process may be running
		}
		os.RemoveAll(d)
	}
}

// binDir returns the root's folder for binaries.
func binDir() (string, error) {
	r, err := root()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(r, "bin")
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	return dir, nil
}

// openDir makes a folder in the root with mode perm, removed when t ends.
func openDir(t testing.TB, pattern string, perm os.FileMode) string {
	t.Helper()
	r, err := root()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(r, pattern)
	if err == nil {
		err = os.Chmod(dir, perm)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// ProcessTempDir returns the temporary directory (TMPDIR, see Environ) of
// the phased processes that t starts: there a master makes its runtime
// folder (phased-PID-*), `phased -t` its phased-check-* folder, and plugin
// processes their sockets (plugin*). It is made on first use in the
// harness's folder, open to every user as /tmp is (children and plugins
// may run as nobody), and removed when t ends, after the processes Start
// started for t are gone, so what a process killed with SIGKILL leaves
// there goes too.
func ProcessTempDir(t testing.TB) string {
	t.Helper()
	tmpMu.Lock()
	defer tmpMu.Unlock()
	if dir, ok := tmpDirs[t]; ok {
		return dir
	}
	dir := openDir(t, "t", 0o777|os.ModeSticky) // short: unix socket paths below it have 108 bytes
	tmpDirs[t] = dir
	t.Cleanup(func() {
		tmpMu.Lock()
		delete(tmpDirs, t)
		tmpMu.Unlock()
	})
	return dir
}
