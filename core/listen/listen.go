// Package listen opens the master's listening sockets.
//
// The master opens every socket named by `listen` once, before anything else,
// with the configured backlog, and keeps it for its whole life. Children
// inherit the sockets as extra file descriptors, so a graceful restart never
// closes a socket and the kernel's accept queue carries connections across
// generations: nobody has to re-bind, and nothing queued is lost.
package listen

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/phasedhq/phased/internal/sockconn"
	"golang.org/x/sys/unix"
)

// Listener is one listening TCP socket owned by the master.
type Listener struct {
	// Addr is the address as configured ("127.0.0.1:8080").
	Addr string
	// Bound is the address the kernel bound (differs from Addr for port 0).
	Bound *net.TCPAddr
	// File is the socket; children inherit a duplicate of it.
	File *os.File
	// Name is the name systemd's LISTEN_FDNAMES gave a socket it passed;
	// "" for sockets phased opened.
	Name string
}

// Close closes the master's copy of the socket. Children keep theirs.
func (l *Listener) Close() error { return l.File.Close() }

// Open binds addr and listens with the given backlog. Errors name the address:
// "listen 127.0.0.1:80: permission denied".
func Open(addr string, backlog int) (*Listener, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	fd, sa, err := socketFor(ta)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	fail := func(op string, err error) (*Listener, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("listen %s: %s: %w", addr, op, explain(err))
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("setsockopt", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return fail("listen", err)
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	return &Listener{Addr: addr, Bound: tcpAddr(bound), File: os.NewFile(uintptr(fd), "listen:"+addr)}, nil
}

func socketFor(ta *net.TCPAddr) (int, unix.Sockaddr, error) {
	if ip4 := ta.IP.To4(); ip4 != nil || ta.IP == nil {
		sa := &unix.SockaddrInet4{Port: ta.Port}
		if ip4 != nil {
			copy(sa.Addr[:], ip4)
		}
		if ta.IP == nil {
			// ":8080": every address, IPv6 and IPv4 where the kernel allows both.
			fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err == nil {
				return fd, &unix.SockaddrInet6{Port: ta.Port}, nil
			}
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		return fd, sa, err
	}
	sa := &unix.SockaddrInet6{Port: ta.Port}
	copy(sa.Addr[:], ta.IP.To16())
	if ta.Zone != "" {
		if ifi, err := net.InterfaceByName(ta.Zone); err == nil {
			sa.ZoneId = uint32(ifi.Index)
		} else if n, err := strconv.Atoi(ta.Zone); err == nil {
			sa.ZoneId = uint32(n)
		}
	}
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	return fd, sa, err
}

func tcpAddr(sa unix.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return &net.TCPAddr{}
}

func explain(err error) error {
	switch {
	case errors.Is(err, unix.EADDRINUSE):
		return fmt.Errorf("address already in use (another server is listening there): %w", err)
	case errors.Is(err, unix.EACCES):
		return fmt.Errorf("permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE): %w", err)
	case errors.Is(err, unix.EADDRNOTAVAIL):
		return fmt.Errorf("address not available on this machine: %w", err)
	}
	return err
}

// Set is the master's listeners, in config order.
type Set struct {
	list []*Listener
}

// List returns the listeners in config order.
func (s *Set) List() []*Listener { return s.list }

// Files returns the sockets in config order, for a child's ExtraFiles.
func (s *Set) Files() []*os.File {
	fs := make([]*os.File, len(s.list))
	for i, l := range s.list {
		fs[i] = l.File
	}
	return fs
}

// Addrs returns the configured addresses in config order.
func (s *Set) Addrs() []string {
	as := make([]string, len(s.list))
	for i, l := range s.list {
		as[i] = l.Addr
	}
	return as
}

// Update makes the set match addrs: sockets already open for an address are
// kept (that is what makes restarts lossless), new ones are opened, and ones
// no longer wanted are returned to the caller to close once nothing needs
// them. On error nothing changes and every socket opened here is closed.
func (s *Set) Update(addrs []string, backlog int) (removed []*Listener, err error) {
	have := make(map[string]*Listener, len(s.list))
	for _, l := range s.list {
		have[l.Addr] = l
	}
	var next, opened []*Listener
	for _, a := range addrs {
		if l, ok := have[a]; ok {
			next = append(next, l)
			delete(have, a)
			continue
		}
		l, err := Open(a, backlog)
		if err != nil {
			for _, o := range opened {
				o.Close()
			}
			return nil, err
		}
		opened = append(opened, l)
		next = append(next, l)
	}
	for _, l := range s.list {
		if _, gone := have[l.Addr]; gone {
			removed = append(removed, l)
		}
	}
	s.list = next
	return removed, nil
}

// Close closes every socket in the set.
func (s *Set) Close() error {
	var errs []error
	for _, l := range s.list {
		errs = append(errs, l.Close())
	}
	s.list = nil
	return errors.Join(errs...)
}

// Reset puts back a list saved from List before a failed Update, closing
// sockets the update opened that the list does not hold.
func (s *Set) Reset(list []*Listener) {
	keep := make(map[*Listener]bool, len(list))
	for _, l := range list {
		keep[l] = true
	}
	for _, l := range s.list {
		if !keep[l] {
			l.Close()
		}
	}
	s.list = append([]*Listener(nil), list...)
}

// QueueDepth returns how many connections wait in the socket's accept queue,
// and the queue's limit (the effective backlog), read with TCP_INFO: for a
// listening socket Linux reports the queue length in tcpi_unacked and the
// backlog in tcpi_sacked.
func (l *Listener) QueueDepth() (depth, limit int, err error) {
	raw, err := l.File.SyscallConn()
	if err == nil {
		depth, limit, err = sockconn.RawQueueDepth(raw)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("listen %s: %w", l.Addr, err)
	}
	return depth, limit, nil
}

// DeferAccept sets how long the kernel keeps a connection that has sent
// nothing from the accept queue (TCP_DEFER_ACCEPT, Apache's AcceptFilter
// data); 0 turns it off. Linux rounds it up to its SYN-ACK retransmission
// times and then hands the connection over anyway.
func (l *Listener) DeferAccept(d time.Duration) error {
	secs := 0
	if d > 0 {
		secs = int(max((d+time.Second-1)/time.Second, 1))
	}
	raw, err := l.File.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, secs)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("listen %s: setsockopt TCP_DEFER_ACCEPT: %w", l.Addr, serr)
	}
	return nil
}

// Adopt wraps a listening socket inherited from another master (a binary
// upgrade) as a Listener for addr.
func Adopt(addr string, f *os.File) (*Listener, error) {
	raw, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("inherited listener %s: %w", addr, err)
	}
	var sa unix.Sockaddr
	var serr error
	if err := raw.Control(func(fd uintptr) { sa, serr = unix.Getsockname(int(fd)) }); err != nil {
		return nil, fmt.Errorf("inherited listener %s: %w", addr, err)
	}
	if serr != nil {
		return nil, fmt.Errorf("inherited listener %s: %w", addr, serr)
	}
	return &Listener{Addr: addr, Bound: tcpAddr(sa), File: f}, nil
}
