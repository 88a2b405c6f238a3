package status

import (
	"bufio"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/phasedhq/phased/internal/scoreboard"
)

// heldConnections returns how many TCP connections each child of procs
// holds on one of the listen addresses: the event block's ConnsTotal, which
// Apache's event children count as they go. phased's children do not count
// them in shared memory, so the status page asks the kernel, only when the
// page is read: the sockets of /proc/net/tcp{,6} whose local port is a
// listener's and that are not listening, matched by inode against each
// child's descriptors. A connection still in the accept queue belongs to no
// child and is not counted. Children whose descriptors cannot be read count
// zero.
func heldConnections(procs []scoreboard.ProcInfo, addrs []string) map[int]int {
	ports := map[uint64]bool{}
	for _, a := range addrs {
		if _, p, err := net.SplitHostPort(a); err == nil {
			if n, err := strconv.ParseUint(p, 10, 16); err == nil {
				ports[n] = true
			}
		}
	}
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		connSockets(f, ports, inodes)
	}
	held := map[int]int{}
	if len(inodes) == 0 {
		return held
	}
	for _, p := range procs {
		if p.PID == 0 {
			continue
		}
		dir := "/proc/" + strconv.Itoa(p.PID) + "/fd/"
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			l, err := os.Readlink(dir + e.Name())
			if err != nil || !strings.HasPrefix(l, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] {
				held[p.PID]++
			}
		}
	}
	return held
}

// tcpListen is the LISTEN state in /proc/net/tcp.
const tcpListen = "0A"

// connSockets adds to inodes the inode of every socket in file (the format
// of /proc/net/tcp) whose local port is in ports and that is not
// listening.
func connSockets(file string, ports map[uint64]bool, inodes map[string]bool) {
	f, err := os.Open(file)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 || fs[3] == tcpListen {
			continue
		}
		_, port, ok := strings.Cut(fs[1], ":")
		if n, err := strconv.ParseUint(port, 16, 16); !ok || err != nil || !ports[n] {
			continue
		}
		inodes[fs[9]] = true
	}
}
