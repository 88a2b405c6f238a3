// Package sockconn accepts TCP connections with the fewest system calls Go
// allows: the accept itself, and the registration with the netpoller.
//
// net's Accept, and net.FileConn, which a listener that accepts by itself
// (internal/acceptmutex) needs to make a net.Conn of a socket, set five
// options on every connection (TCP_NODELAY, and SO_KEEPALIVE with its
// idle time, interval and count) and ask the kernel for its local address;
// net.FileConn first duplicates the socket and asks for its type and both
// addresses. With `Connection: close` traffic, where every request is a
// new connection, those are most of a child's system calls per request
// (an event child made 19 for each, nginx 6).
//
// Linux copies a listening socket's options to the sockets it accepts, so
// Prepare sets them once on the listening socket, to the values net's
// Accept sets on each (TCP_NODELAY on, keep-alive probes after 15 s idle,
// every 15 s, 9 of them); a Conn is an *os.File over the accepted socket,
// which os registers with the netpoller as net does, and its local address
// is the listener's, asked of the kernel only when the listener's is a
// wildcard and somebody wants it. A Conn behaves as a *net.TCPConn: its
// errors are *net.OpErrors (net/http tells a timeout or a reset from a bad
// request by them), it has CloseWrite and CloseRead, and SyscallConn.
//
// UnixAddr.Dial makes a Conn of a new connection to a unix socket, as a
// child connects to its app server, and UnixAddr.Exchange one request and
// answer outside the netpoller (exchange.go). A Conn reads, writes and,
// with CloseSoon, closes without the Go scheduler's system call entry
// (raw.go says why that matters).
package sockconn

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The keep-alive net's Accept sets on each connection (net's
// defaultTCPKeepAliveIdle, Interval and Count).
const (
	keepAliveIdle     = 15 // seconds
	keepAliveInterval = 15 // seconds
	keepAliveCount    = 9
)

// Prepare sets on the listening TCP socket fd the options its accepted
// sockets inherit: TCP_NODELAY and keep-alive probes as net's Accept sets
// them on each connection. The socket may be shared with other processes;
// the options are the socket's, so setting them again changes nothing.
func Prepare(fd int) error {
	for _, o := range []struct {
		level, opt, v int
		name          string
	}{
		{unix.IPPROTO_TCP, unix.TCP_NODELAY, 1, "TCP_NODELAY"},
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1, "SO_KEEPALIVE"},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, keepAliveIdle, "TCP_KEEPIDLE"},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, keepAliveInterval, "TCP_KEEPINTVL"},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, keepAliveCount, "TCP_KEEPCNT"},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.v); err != nil {
			return fmt.Errorf("setsockopt %s: %w", o.name, err)
		}
	}
	return nil
}

// Accept accepts a connection on the non-blocking listening socket fd,
// non-blocking and close-on-exec, with a raw system call (it never
// blocks, so the scheduler need not hear of it). It returns EAGAIN when
// no connection waits; ECONNABORTED (a connection reset in the queue) is
// skipped, as net does.
func Accept(fd int) (int, *net.TCPAddr, error) {
	for {
		var rsa unix.RawSockaddrAny
		n := uint32(unix.SizeofSockaddrAny)
		nfd, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		switch e {
		case 0:
			return int(nfd), tcpAddr(&rsa), nil
		case unix.EINTR, unix.ECONNABORTED:
			continue
		default:
			return -1, nil, e
		}
	}
}

// tcpAddr is the address in rsa, an AF_INET or AF_INET6 address (nil for
// any other family).
func tcpAddr(rsa *unix.RawSockaddrAny) *net.TCPAddr {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return &net.TCPAddr{IP: net.IPv4(sa.Addr[0], sa.Addr[1], sa.Addr[2], sa.Addr[3]), Port: int(p[0])<<8 | int(p[1])}
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return &net.TCPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: int(p[0])<<8 | int(p[1]), Zone: zone(sa.Scope_id)}
	}
	return nil
}

// TCPAddr is sa as a *net.TCPAddr, as net gives it; nil when sa is not
// an IPv4 or IPv6 address.
func TCPAddr(sa unix.Sockaddr) *net.TCPAddr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IPv4(sa.Addr[0], sa.Addr[1], sa.Addr[2], sa.Addr[3]), Port: sa.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: sa.Port, Zone: zone(sa.ZoneId)}
	}
	return nil
}

// zone is the name of the interface an IPv6 scope id names, as net gives
// it (its number when it has no name).
func zone(id uint32) string {
	if id == 0 {
		return ""
	}
	if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
		return ifi.Name
	}
	return strconv.FormatUint(uint64(id), 10)
}

// ErrNotTCP is Listen's error for a socket that is not a TCP socket (a
// unix socket): the caller uses net's listener for it.
var ErrNotTCP = errors.New("not a TCP socket")

// Listener is a net.Listener over an inherited listening TCP socket whose
// connections are Conns.
type Listener struct {
	f        *os.File
	rc       syscall.RawConn
	closed   atomic.Bool
	addr     *net.TCPAddr
	connAddr *net.TCPAddr // its connections' local address: addr, or nil for 0.0.0.0 and :: (a Conn asks for its own)
}

// Listen makes a Listener of a duplicate of the listening TCP socket f
// (the caller closes f), in non-blocking mode, prepared (Prepare). It
// fails for a socket that is not a listening TCP socket.
func Listen(f *os.File) (*Listener, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd, serr := -1, error(nil)
	var sa unix.Sockaddr
	if err := rc.Control(func(s uintptr) {
		if fd, serr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0); serr != nil {
			serr = os.NewSyscallError("fcntl", serr)
			return
		}
		if sa, serr = unix.Getsockname(fd); serr != nil {
			serr = os.NewSyscallError("getsockname", serr)
		}
	}); err != nil {
		return nil, err
	}
	fail := func(err error) (*Listener, error) {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("listening socket: %w", err)
	}
	if serr != nil {
		return fail(serr)
	}
	addr := TCPAddr(sa)
	if addr == nil {
		return fail(fmt.Errorf("%w (%T)", ErrNotTCP, sa))
	}
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v == 0 {
		return fail(errors.New("not listening"))
	}
	if err := Prepare(fd); err != nil {
		return fail(err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return fail(os.NewSyscallError("fcntl", err))
	}
	lf := os.NewFile(uintptr(fd), "listener")
	if lf == nil {
		return fail(errors.New("bad descriptor"))
	}
	l := &Listener{f: lf, addr: addr}
	if !addr.IP.IsUnspecified() {
		l.connAddr = addr
	}
	if l.rc, err = lf.SyscallConn(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("listening socket: %w", err)
	}
	return l, nil
}

// Accept waits for a connection and returns it, a *Conn.
func (l *Listener) Accept() (net.Conn, error) {
	var nfd int
	var raddr *net.TCPAddr
	var aerr error
	err := l.rc.Read(func(fd uintptr) bool {
		nfd, raddr, aerr = Accept(int(fd))
		return aerr != unix.EAGAIN
	})
	if err == nil && aerr != nil {
		err = os.NewSyscallError("accept4", aerr)
	}
	if err != nil {
		return nil, (*listenerRaw)(l).wrap("accept", err)
	}
	c, err := NewConn(nfd, l.connAddr, raddr)
	if err != nil {
		return nil, (*listenerRaw)(l).wrap("accept", err)
	}
	return c, nil
}

// Close closes the Listener; a waiting Accept returns an error matching
// net.ErrClosed.
func (l *Listener) Close() error {
	l.closed.Store(true)
	return (*listenerRaw)(l).wrap("close", l.f.Close())
}

// Addr is the address the socket listens on.
func (l *Listener) Addr() net.Addr { return l.addr }

// SetDeadline sets the time after which Accept returns an error matching
// os.ErrDeadlineExceeded; the zero time means none.
func (l *Listener) SetDeadline(t time.Time) error {
	return (*listenerRaw)(l).wrap("set", l.f.SetReadDeadline(t))
}

// SyscallConn gives the listening socket, as net.TCPListener's does: its
// errors are *net.OpErrors, net.ErrClosed once the Listener is closed.
func (l *Listener) SyscallConn() (syscall.RawConn, error) { return (*listenerRaw)(l), nil }

// QueueDepth is the package's QueueDepth for the Listener's socket.
func (l *Listener) QueueDepth() (depth, limit int, err error) {
	return RawQueueDepth((*listenerRaw)(l))
}

// RawQueueDepth is QueueDepth for the listening socket behind rc.
func RawQueueDepth(rc syscall.RawConn) (depth, limit int, err error) {
	var qerr error
	if err := rc.Control(func(fd uintptr) { depth, limit, qerr = QueueDepth(int(fd)) }); err != nil {
		return 0, 0, err
	}
	return depth, limit, qerr
}

// QueueDepth returns how many connections wait in the accept queue of the
// listening socket fd, and the queue's limit (the effective backlog), read
// with TCP_INFO: for a listening socket Linux reports the queue length in
// tcpi_unacked and the backlog in tcpi_sacked. It fails for a socket that
// is not TCP.
//
// The call is raw: it never waits, and an event child asks it as it
// accepts, where a call through the Go scheduler's system-call entry would
// wake the runtime's monitor thread whenever the child had been idle.
func QueueDepth(fd int) (depth, limit int, err error) {
	var info unix.TCPInfo
	n := uint32(unix.SizeofTCPInfo)
	if _, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_INFO,
		uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&n)), 0); e != 0 {
		return 0, 0, os.NewSyscallError("getsockopt TCP_INFO", e)
	}
	return int(info.Unacked), int(info.Sacked), nil
}

// Conn is an accepted TCP connection, or a unix one UnixAddr.Dial made, served
// by the netpoller; see the package's doc. Its reads and writes are raw
// system calls (raw.go).
type Conn struct {
	f      *os.File
	rc     syscall.RawConn
	unix   bool     // a unix socket's (UnixAddr.Dial), else a TCP one's
	raddr  net.Addr // nil when unknown
	closed atomic.Bool

	fixed     net.Addr  // the local address when known from the start (the listener's when it is not a wildcard)
	laddrOnce sync.Once // otherwise asked of the kernel once, into laddr
	laddr     *net.TCPAddr

	raw atomic.Pointer[rawOps] // Read's and Write's (raw.go)
}

// NewConn makes a Conn of the accepted non-blocking socket fd, which it
// takes (closing it on failure). laddr nil: LocalAddr asks the kernel
// when first called.
func NewConn(fd int, laddr, raddr *net.TCPAddr) (*Conn, error) {
	f := os.NewFile(uintptr(fd), "tcp")
	if f == nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("accept4", unix.EBADF)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	c := &Conn{f: f, rc: rc}
	if raddr != nil {
		c.raddr = raddr
	}
	if laddr != nil {
		c.fixed = laddr
	}
	return c, nil
}

// netErr is the error net's own connections give where os gives err: the
// error a *fs.PathError wraps, and net.ErrClosed for a closed file.
func netErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if errors.Is(err, os.ErrClosed) {
		return net.ErrClosed
	}
	return err
}

func (c *Conn) opError(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if c.closed.Load() {
		err = net.ErrClosed
	}
	return &net.OpError{Op: op, Net: c.network(), Source: c.LocalAddr(), Addr: c.raddr, Err: netErr(err)}
}

func (c *Conn) network() string {
	if c.unix {
		return "unix"
	}
	return "tcp"
}

// Read reads as net.TCPConn's Read does.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.ops().rd.read(c.rc, p)
	return n, c.opError("read", err)
}

// Write writes as net.TCPConn's Write does.
func (c *Conn) Write(p []byte) (int, error) {
	n, err := c.ops().wr.write(c.rc, p)
	return n, c.opError("write", err)
}

// Close closes the connection.
func (c *Conn) Close() error {
	c.closed.Store(true)
	return c.opError("close", c.f.Close())
}

// LocalAddr is the connection's local address.
func (c *Conn) LocalAddr() net.Addr {
	if c.fixed != nil {
		return c.fixed
	}
	if c.unix {
		return nil
	}
	c.laddrOnce.Do(func() {
		_ = c.rc.Control(func(fd uintptr) {
			if sa, err := unix.Getsockname(int(fd)); err == nil {
				c.laddr = TCPAddr(sa)
			}
		})
	})
	if c.laddr == nil {
		return nil
	}
	return c.laddr
}

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() net.Addr {
	return c.raddr
}

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error { return c.opError("set", c.f.SetDeadline(t)) }

// SetReadDeadline sets the read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error {
	return c.opError("set", c.f.SetReadDeadline(t))
}

// SetWriteDeadline sets the write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	return c.opError("set", c.f.SetWriteDeadline(t))
}

// SyscallConn gives the socket, as net.TCPConn's does: its errors are
// *net.OpErrors, net.ErrClosed once the connection is closed.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return (*connRaw)(c), nil }

// connRaw and listenerRaw are a Conn's and a Listener's os.File
// syscall.RawConn with net's errors: os gives "use of closed file", which
// is not net.ErrClosed, for a closed socket. Pointer types, so that
// SyscallConn allocates nothing: the child asks for it several times a
// connection (its raw reads and writes, SIOCINQ).
type (
	connRaw     Conn
	listenerRaw Listener
)

func (r *connRaw) Control(f func(fd uintptr)) error {
	return (*Conn)(r).opError("raw-control", r.rc.Control(f))
}
func (r *connRaw) Read(f func(fd uintptr) bool) error {
	return (*Conn)(r).opError("raw-read", r.rc.Read(f))
}
func (r *connRaw) Write(f func(fd uintptr) bool) error {
	return (*Conn)(r).opError("raw-write", r.rc.Write(f))
}

// wrap is err as net's listener gives it: a *net.OpError, net.ErrClosed
// once the Listener is closed.
func (r *listenerRaw) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if r.closed.Load() {
		err = net.ErrClosed
	}
	return &net.OpError{Op: op, Net: "tcp", Addr: r.addr, Err: netErr(err)}
}

func (r *listenerRaw) Control(f func(fd uintptr)) error {
	return r.wrap("raw-control", r.rc.Control(f))
}
func (r *listenerRaw) Read(f func(fd uintptr) bool) error {
	return r.wrap("raw-read", r.rc.Read(f))
}
func (r *listenerRaw) Write(f func(fd uintptr) bool) error {
	return r.wrap("raw-write", r.rc.Write(f))
}

// CloseWrite shuts the sending side down (a FIN), as net.TCPConn's does.
func (c *Conn) CloseWrite() error { return c.shutdown(unix.SHUT_WR, "close") }

// CloseRead shuts the receiving side down.
func (c *Conn) CloseRead() error { return c.shutdown(unix.SHUT_RD, "close") }

func (c *Conn) shutdown(how int, op string) error {
	var serr error
	if err := c.rc.Control(func(fd uintptr) { serr = unix.Shutdown(int(fd), how) }); err != nil {
		return c.opError(op, err)
	}
	if serr != nil {
		return c.opError(op, os.NewSyscallError("shutdown", serr))
	}
	return nil
}

// Linger ends c's sending side (FIN after what was written) and reads and
// drops what the peer still sends until it closes, for within at most and
// up to most bytes: a lingering close, as Apache's. The caller closes c
// after. Closed at once with the peer's bytes unread, or with more of them
// on the way, a socket resets the connection, and a peer that meets the
// reset first may never read the last words it was sent. A c that cannot
// half-close is left as it is.
func Linger(c net.Conn, within time.Duration, most int) {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil || c.SetReadDeadline(time.Now().Add(within)) != nil {
		return
	}
	var buf [4096]byte
	for n := 0; n < most; {
		m, err := c.Read(buf[:])
		if n += m; err != nil {
			return
		}
	}
}
