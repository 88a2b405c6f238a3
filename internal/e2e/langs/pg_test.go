package langs

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// The pool tests match each of an app's connections in pg_stat_activity
// (by its client port) to the processes that hold its socket, read from
// /proc: every connection must be held by an app process of a live child,
// so that neither the master, nor a child, nor a process left over from a
// retired child holds one.

// backendPorts returns the client ports of the database's connections
// whose application_name is name.
func backendPorts(t *testing.T, pg *e2e.PG, name string) []int {
	t.Helper()
	rows, err := pg.DB.Query(context.Background(),
		"SELECT client_port FROM pg_stat_activity WHERE application_name = $1", name)
	if err != nil {
		t.Fatalf("pg_stat_activity: %v", err)
	}
	defer rows.Close()
	var ports []int
	for rows.Next() {
		var p *int32
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		if p == nil {
			t.Fatalf("a connection named %s has no client port: not a TCP connection", name)
		}
		ports = append(ports, int(*p))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ports
}

// tcpInodes returns the socket inodes of the machine's TCP connections to
// server port, by local port, from /proc/net/tcp and tcp6.
func tcpInodes(server int) map[int]string {
	out := map[int]string{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // the header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 {
				continue
			}
			local, remote := hexPort(fields[1]), hexPort(fields[2])
			if remote == server && fields[9] != "0" {
				out[local] = fields[9]
			}
		}
		fh.Close()
	}
	return out
}

// hexPort is the port of an address as /proc/net/tcp writes it
// (0100007F:1538).
func hexPort(addr string) int {
	_, h, _ := strings.Cut(addr, ":")
	p, _ := strconv.ParseInt(h, 16, 32)
	return int(p)
}

// socketHolders returns, for each socket inode in inodes, the pids of every
// process on the machine that holds it open.
func socketHolders(inodes map[string]bool) map[string][]int {
	out := map[string][]int{}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", p.Name(), "fd")
		fds, _ := os.ReadDir(dir)
		for _, fd := range fds {
			l, err := os.Readlink(filepath.Join(dir, fd.Name()))
			if ino, ok := strings.CutPrefix(l, "socket:["); err == nil && ok {
				ino = strings.TrimSuffix(ino, "]")
				if inodes[ino] && !slices.Contains(out[ino], pid) {
					out[ino] = append(out[ino], pid)
				}
			}
		}
	}
	return out
}

// poolCheck is what checkPools found wrong, or "" when all is well.
type poolCheck struct {
	conns int
	byApp map[int]int // app pid -> connections its processes hold
	err   string
}

// checkPools checks the app connections named name against the children
// of x: each ready child's app holds exactly size of them, in a process
// below its main one when inWorker (gunicorn's worker, not its master);
// every connection is held by one process, an app process of a live child;
// none by anyone else. Connections are counted once the children that
// retire are gone: only ready children are expected.
func checkPools(t *testing.T, pg *e2e.PG, x *example, name string, size int, inWorker bool) poolCheck {
	t.Helper()
	kids := x.children(t)
	ports := backendPorts(t, pg, name)
	inodes := tcpInodes(pg.Port)
	want := map[string]bool{}
	for _, p := range ports {
		if ino, ok := inodes[p]; ok {
			want[ino] = true
		}
	}
	holders := socketHolders(want)
	r := poolCheck{conns: len(ports), byApp: map[int]int{}}
	fail := func(format string, args ...any) poolCheck {
		if r.err == "" {
			r.err = fmt.Sprintf(format, args...)
		}
		return r
	}
	owner := map[int]int{} // a process of an app -> that app's pid
	ready := 0
	for _, c := range kids {
		if c.AppPID == 0 || !e2e.Alive(c.PID) {
			continue
		}
		if c.State == "ready" {
			ready++
			r.byApp[c.AppPID] = 0
		}
		if !inWorker {
			owner[c.AppPID] = c.AppPID
		}
		for _, d := range e2e.Descendants(c.AppPID) {
			owner[d] = c.AppPID
		}
	}
	for _, p := range ports {
		ino, ok := inodes[p]
		if !ok || len(holders[ino]) == 0 {
			return fail("the connection from client port %d is held by no process on this machine", p)
		}
		if len(holders[ino]) != 1 {
			return fail("the connection from client port %d is held by %d processes %v: shared across a fork", p, len(holders[ino]), holders[ino])
		}
		pid := holders[ino][0]
		app, ok := owner[pid]
		if !ok {
			what := "not an app process of a live child"
			switch {
			case pid == x.PID():
				what = "the master"
			case slices.Contains(e2e.Workers(x.PID()), pid):
				what = "a child"
			case slices.ContainsFunc(kids, func(c childStatus) bool { return c.AppPID == pid }):
				what = "an app server's main process, not its worker"
			}
			return fail("the connection from client port %d is held by pid %d: %s", p, pid, what)
		}
		if _, ok := r.byApp[app]; !ok {
			return fail("the connection from client port %d is held by pid %d of app %d, whose child is not ready (retiring?)", p, pid, app)
		}
		r.byApp[app]++
	}
	if len(r.byApp) == 0 {
		return fail("no ready child with an app")
	}
	for app, n := range r.byApp {
		if n != size {
			return fail("app %d holds %d connections, want its pool of %d (pools by app %v)", app, n, size, r.byApp)
		}
	}
	if r.conns != ready*size {
		return fail("%d connections in pg_stat_activity for %d ready children, want %d x %d", r.conns, ready, ready, size)
	}
	return r
}

// waitPools waits until checkPools finds nothing wrong with children
// ready children (0: any number), and fails t with what it found at the
// deadline: 45 s, as long as a prefork server's idle children, grown for
// a load, take to retire one a tick, each with its app server's graceful
// stop.
func waitPools(t *testing.T, pg *e2e.PG, x *example, name string, children, size int, inWorker bool) poolCheck {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		r := checkPools(t, pg, x, name, size, inWorker)
		if r.err == "" && children != 0 && len(r.byApp) != children {
			r.err = fmt.Sprintf("%d ready children with apps, want %d", len(r.byApp), children)
		}
		if r.err == "" {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("database pools: %s; log:\n%s", r.err, x.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
