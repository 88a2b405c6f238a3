package testkit

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// procStat returns the state and process group of process pid from
// /proc/PID/stat, and false when there is no such process.
func procStat(pid int) (state byte, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
	s := string(b)
	rest := s[strings.LastIndexByte(s, ')')+1:]
	f := strings.Fields(rest)
	if len(f) < 3 {
		return 0, 0, false
	}
	pgrp, err = strconv.Atoi(f[2])
	return f[0][0], pgrp, err == nil
}

// Alive reports whether process pid exists and is not a zombie, as /proc
// tells.
func Alive(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// Group returns the processes of process group pgid that are alive, as
// /proc tells.
func Group(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, pgrp, ok := procStat(pid); ok && pgrp == pgid && state != 'Z' && state != 'X' {
			pids = append(pids, pid)
		}
	}
	return pids
}

// WaitGroupGone waits up to d for every process of group pgid to be gone
// (zombies count as gone) and returns those still alive.
func WaitGroupGone(pgid int, d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		left := Group(pgid)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(5 * time.Millisecond)
	}
}
