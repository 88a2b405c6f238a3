// Package procfs reads what phased needs to know of processes from Linux's
// /proc: a process's memory and its descendants, so that a child that owns
// an app server is measured with it (max_memory_per_child, the status
// page), and whether a process is alive (a zombie is not).
package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Memory returns a process's proportional set size (PSS) in bytes, or its
// resident set size (RSS) where smaps_rollup cannot be read; 0 when the
// process is gone.
func Memory(pid int) int64 {
	for _, f := range []struct{ path, key string }{
		{fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:"},
		{fmt.Sprintf("/proc/%d/status", pid), "VmRSS:"},
	} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) >= 2 && fields[0] == f.key {
				kb, _ := strconv.ParseInt(fields[1], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// TreeMemory returns the memory (as Memory) of pid and every process below
// it: a child and the app server it owns, with the app server's workers.
func TreeMemory(pid int) int64 {
	n := Memory(pid)
	for _, c := range Descendants(pid) {
		n += Memory(c)
	}
	return n
}

// Children returns the pids of pid's direct children.
func Children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// Descendants returns every process below pid, parents before their
// children.
func Descendants(pid int) []int {
	var out []int
	for _, c := range Children(pid) {
		out = append(out, c)
		out = append(out, Descendants(c)...)
	}
	return out
}

// Zombie reports whether pid has exited and waits for its parent to reap
// it.
func Zombie(pid int) bool { return state(pid) == 'Z' }

// state is the state letter of /proc/PID/stat (R, S, D, Z, X ...), or 0.
func state(pid int) byte { return statState("/proc/" + strconv.Itoa(pid) + "/stat") }

// statState is the state letter of a stat file (a process's or a
// thread's), or 0.
func statState(path string) byte {
	f := statFields(path)
	if len(f) == 0 || len(f[0]) != 1 {
		return 0
	}
	return f[0][0]
}

// Pids returns the ids of the processes in /proc.
func Pids() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

// Below reports whether pid descends from ancestor, by the parent ids in
// /proc/PID/stat (which the kernel changes at once when a process is
// reparented, unlike the children lists Children reads, which it
// documents as unreliable while the children run).
func Below(pid, ancestor int) bool {
	for range 128 {
		f := statFields("/proc/" + strconv.Itoa(pid) + "/stat")
		if len(f) < 2 {
			return false
		}
		ppid, err := strconv.Atoi(f[1])
		if err != nil || ppid <= 0 {
			return false
		}
		if ppid == ancestor {
			return true
		}
		pid = ppid
	}
	return false
}

// Pgid returns the process group of pid, or 0 when it is gone.
func Pgid(pid int) int {
	f := statFields("/proc/" + strconv.Itoa(pid) + "/stat")
	if len(f) < 3 {
		return 0
	}
	n, _ := strconv.Atoi(f[2])
	return n
}

// statFields returns the fields of a stat file that follow the command
// name (state, ppid, pgrp ...), or nil.
func statFields(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	// The command name is in parentheses and may hold spaces and ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// Alive reports whether pid is a live process: not gone, and not a zombie
// waiting to be reaped (kill -0 succeeds on a zombie).
func Alive(pid int) bool {
	st := state(pid)
	return st != 0 && st != 'Z' && st != 'X'
}

// Stopped reports whether every thread of pid is stopped (SIGSTOP, or a
// tracer): a stop signal is delivered asynchronously, and until every
// thread has stopped, the process may still run.
func Stopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, t := range tasks {
		if st := statState(fmt.Sprintf("/proc/%d/task/%s/stat", pid, t.Name())); st != 'T' && st != 't' {
			return false
		}
	}
	return true
}

// ExeResident returns the resident KiB of a process's mappings of its own
// executable, from /proc/PID/smaps: how much of the binary it keeps in
// memory (pid 0: this process).
func ExeResident(pid int) (int, error) {
	dir := "/proc/self"
	if pid != 0 {
		dir = "/proc/" + strconv.Itoa(pid)
	}
	exe, err := os.Readlink(dir + "/exe")
	if err != nil {
		return 0, err
	}
	f, err := os.Open(dir + "/smaps")
	if err != nil {
		return 0, err
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
	return rss, sc.Err()
}
