// Package pidfile writes the master's pid file and keeps it locked.
//
// The file is written atomically (a temporary file renamed into place) and the
// master holds an exclusive flock on it for as long as it lives. The lock, not
// the pid inside, is what says "a master is running": if nobody holds it the
// file is stale (its process is gone, or the pid now belongs to something
// else), and a new master warns and takes it over instead of refusing to start
// — the failure Apache-derived servers' manuals warn about, where a stale
// PidFile left by a crash blocks the next start.
package pidfile

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// RunningError is returned by Acquire when a live master holds the pid file.
type RunningError struct {
	Path string
	PID  int
}

func (e *RunningError) Error() string {
	return fmt.Sprintf("phased (pid %d) already running (pid file %s)", e.PID, e.Path)
}

// File is a pid file held by this process.
type File struct {
	path string
	f    *os.File
}

// Path returns the file's path.
func (p *File) Path() string { return p.path }

// Acquire writes pid into path and locks it. It returns a *RunningError when
// another live master holds the file, and takes over (with a warning on log)
// a stale one. Two masters starting at once cannot both win: where there is
// no file yet, the new one is linked into place, which fails for the second.
func Acquire(path string, pid int, log *slog.Logger) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("pid file %s: %w", path, err)
	}
	for range 3 {
		f, err := acquire(path, pid, log)
		if !errors.Is(err, os.ErrExist) {
			return f, err
		}
		// Another master created the file between our look and our link:
		// look again (it holds it, or it failed and the file is stale).
	}
	return nil, fmt.Errorf("pid file %s: another process keeps creating it", path)
}

func acquire(path string, pid int, log *slog.Logger) (*File, error) {
	existed := false
	if old, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
		existed = true
		defer old.Close()
		if err := unix.Flock(int(old.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, &RunningError{Path: path, PID: Read(path)}
			}
			return nil, fmt.Errorf("pid file %s: lock: %w", path, err)
		}
		if stale := Read(path); stale != 0 {
			log.Warn("taking over stale pid file", "path", path, "stale_pid", stale)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("pid file %s: %w", path, err)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, pid)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pid file %s: %w", path, err)
	}
	fail := func(err error) (*File, error) {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("pid file %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fail(err)
	}
	if _, err := f.WriteString(strconv.Itoa(pid) + "\n"); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if existed {
		// We hold the stale file's lock: nobody else can take it over.
		if err := os.Rename(tmp, path); err != nil {
			return fail(err)
		}
	} else {
		if err := os.Link(tmp, path); err != nil {
			f.Close()
			os.Remove(tmp)
			if errors.Is(err, os.ErrExist) {
				return nil, err // raced with another master: look again
			}
			return nil, fmt.Errorf("pid file %s: %w", path, err)
		}
		os.Remove(tmp)
	}
	return &File{path: path, f: f}, nil
}

// Read returns the pid written in path, or 0 when there is none.
func Read(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

// Held reports whether a live process holds the lock on path.
func Held(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

// Remove deletes the pid file, if it is still the one this process wrote, and
// releases the lock.
func (p *File) Remove() error {
	defer p.f.Close()
	mine, err := p.f.Stat()
	if err != nil {
		return err
	}
	there, err := os.Stat(p.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if !os.SameFile(mine, there) {
		return nil
	}
	return os.Remove(p.path)
}

// Release lets go of the lock and leaves the file in place, for a binary
// upgrade: the new master takes the file over (and rewrites it with its own
// pid) once the old one has released it.
func (p *File) Release() error { return p.f.Close() }
