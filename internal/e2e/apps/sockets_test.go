package apps

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
	"golang.org/x/sys/unix"
)

// This file finds which process holds a TCP connection to a port, as ss -tp
// does: the kernel's sock_diag netlink interface lists the sockets with
// their inodes and ports, /proc/PID/fd names the inodes a process holds.
// Reading /proc/net/tcp instead costs tens of milliseconds on a machine that
// has just served thousands of short connections (every TIME_WAIT socket is
// a line); sock_diag leaves those out, but still walks the kernel's table,
// a few milliseconds.

// tcpSock is one TCP socket as sock_diag reports it.
type tcpSock struct {
	state       uint8
	local, peer int // ports; peer is 0 on a listener
}

const (
	tcpListen   = 10 // TCP_LISTEN in the kernel's tcp_states.h
	tcpTimeWait = 6  // TCP_TIME_WAIT
	// inet_diag_req_v2 and inet_diag_msg (linux/inet_diag.h).
	sizeofDiagReq = 56
	sizeofDiagMsg = 72
)

// tcpSockets returns the machine's TCP sockets that a process may hold (not
// TIME_WAIT), IPv4 and IPv6, by inode.
func tcpSockets() (map[string]tcpSock, error) {
	out := map[string]tcpSock{}
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if err := sockDiag(family, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// tcpTo returns the machine's TCP connections to port, as socket inode ->
// local port.
func tcpTo(port int) (map[string]int, error) {
	socks, err := tcpSockets()
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for ino, s := range socks {
		if s.peer == port {
			out[ino] = s.local
		}
	}
	return out, nil
}

// sockDiag dumps family's TCP sockets through NETLINK_SOCK_DIAG into out.
func sockDiag(family uint8, out map[string]tcpSock) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return fmt.Errorf("sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	req := make([]byte, unix.SizeofNlMsghdr+sizeofDiagReq)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], 1) // sequence
	r := req[unix.SizeofNlMsghdr:]
	r[0], r[1] = family, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(r[4:], 0xfff&^(1<<tcpTimeWait)) // idiag_states
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sock_diag request: %w", err)
	}
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return fmt.Errorf("sock_diag reply: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("sock_diag reply: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
						return fmt.Errorf("sock_diag: %w", unix.Errno(-e))
					}
				}
				return errors.New("sock_diag: error reply")
			}
			d := m.Data
			if len(d) < sizeofDiagMsg {
				continue
			}
			// idiag_family, state, timer, retrans; then inet_diag_sockid,
			// whose ports are big-endian; idiag_inode is the last field.
			if inode := binary.NativeEndian.Uint32(d[68:]); inode != 0 {
				out[fmt.Sprint(inode)] = tcpSock{state: d[1],
					local: int(binary.BigEndian.Uint16(d[4:])), peer: int(binary.BigEndian.Uint16(d[6:]))}
			}
		}
	}
}

// socketInodes returns the sockets pid holds open, as inode -> the path of
// a descriptor of it under /proc/PID/fd.
func socketInodes(pid int) map[string]string {
	out := map[string]string{}
	dir := fmt.Sprintf("/proc/%d/fd/", pid)
	fds, _ := os.ReadDir(dir)
	for _, fd := range fds {
		l, err := os.Readlink(dir + fd.Name())
		if err == nil && strings.HasPrefix(l, "socket:[") {
			out[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = dir + fd.Name()
		}
	}
	return out
}

// isTCP reports whether the descriptor at path (/proc/PID/fd/N) is a TCP
// socket, or may be one (it is gone).
func isTCP(path string) bool {
	buf := make([]byte, 32)
	n, err := unix.Getxattr(path, "system.sockprotoname", buf)
	return err != nil || strings.HasPrefix(string(buf[:n]), "TCP")
}

// heldBy returns the local ports of the connections in conns (see tcpTo)
// whose sockets pid holds open.
func heldBy(pid int, conns map[string]int) []int {
	var ports []int
	for ino := range socketInodes(pid) {
		if p, ok := conns[ino]; ok {
			ports = append(ports, p)
		}
	}
	return ports
}

// masterWatch watches a master and its plugin processes, until stopped, for
// a connection to the database.
//
// Every 2 ms it lists their sockets (about 50 us). A socket can lead to the
// database only if it is TCP, and a TCP socket that is listening, or
// connected elsewhere, never will: once the kernel has said so of a socket
// (sock_diag, a few milliseconds), the watch stops asking about it. Any
// other TCP socket (new, or not connected yet) has the kernel asked at once
// and at every listing until it is settled; and every second the kernel is
// asked about all of them anyway.
type masterWatch struct {
	stop, done chan struct{}
	once       sync.Once
	began      time.Time
	looks      int           // socket listings
	checks     int           // of which, asking the kernel where they lead
	gap        time.Duration // the longest time between two listings
	held       []string      // what was found, for the failure message
	err        error
}

func watchMaster(t *testing.T, master, port int) *masterWatch {
	w := &masterWatch{stop: make(chan struct{}), done: make(chan struct{}), began: time.Now()}
	go w.run(master, port)
	t.Cleanup(w.end)
	return w
}

func (w *masterWatch) run(master, port int) {
	defer close(w.done)
	settled := map[string]bool{} // not TCP, listening, or connected elsewhere
	var pids []int
	var listed, checked, last time.Time
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		now := time.Now()
		if w.looks > 0 {
			w.gap = max(w.gap, now.Sub(last))
		}
		last = now
		if now.Sub(listed) > 100*time.Millisecond {
			pids, listed = append([]int{master}, e2e.Plugins(master)...), now
		}
		held := map[int]map[string]string{}
		open := false
		for _, pid := range pids {
			held[pid] = socketInodes(pid)
			for ino, path := range held[pid] {
				if settled[ino] {
					continue
				}
				if !isTCP(path) {
					settled[ino] = true
					continue
				}
				open = true
			}
		}
		w.looks++
		if open || now.Sub(checked) > time.Second {
			socks, err := tcpSockets()
			if err != nil {
				w.err = err
				return
			}
			for _, pid := range pids {
				for ino := range held[pid] {
					s, ok := socks[ino]
					switch {
					case !ok: // not connected yet, or gone: ask again
					case s.peer == port:
						if len(w.held) < 10 {
							w.held = append(w.held, fmt.Sprintf("pid %d from local port %d", pid, s.local))
						}
					case s.state == tcpListen || s.peer != 0:
						settled[ino] = true
					}
				}
			}
			w.checks++
			checked = now
		}
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
	}
}

func (w *masterWatch) end() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

// check ends the watch and fails t if the master or one of its plugin
// processes ever held a connection to the database, or if the watch, on a
// busy machine, listed their sockets less than once per 20 ms on average.
func (w *masterWatch) check(t *testing.T) {
	t.Helper()
	w.end()
	watched := time.Since(w.began)
	if w.err != nil {
		t.Fatalf("watching the master's sockets: %v", w.err)
	}
	if len(w.held) > 0 {
		t.Fatalf("the master held database connections: %v", w.held)
	}
	if w.looks < int(watched/(20*time.Millisecond)) || w.checks == 0 {
		t.Fatalf("the master's sockets were listed only %d times and checked %d times in %s", w.looks, w.checks, watched)
	}
	t.Logf("the master held no database connection: %d listings of its sockets (at most %s apart), %d checks with the kernel, in %s",
		w.looks, w.gap.Round(time.Millisecond), w.checks, watched.Round(time.Millisecond))
}
