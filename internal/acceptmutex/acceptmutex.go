package acceptmutex

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/phasedhq/phased/internal/sockconn"
)

// pollTimeout is how long, in milliseconds, the lock holder waits in poll
// before it checks whether the Listener was closed. It bounds how long Close
// takes to make a blocked Accept return.
const pollTimeout = 100

// Listener is a net.Listener on an inherited listening socket that lets
// one of the processes sharing the socket wait for each connection: either
// the one that holds an exclusive flock on a lock file shared by every
// process serving the same socket (Listen), or, without a lock, one that the
// kernel picks among those waiting in epoll with EPOLLEXCLUSIVE
// (ListenWakeOne).
//
// Accept may be called from several goroutines; they take turns. Close may
// be called from any goroutine.
type Listener struct {
	fd   int      // our duplicate of the socket; kept out of Go's netpoller
	lock *os.File // this process's own open file description of the lock file; nil for ListenWakeOne
	ep   int      // ListenWakeOne's epoll instance; -1 for Listen
	// wake is an eventfd SetDeadline writes to, watched beside the socket
	// so that a waiting Accept notices a new deadline at once.
	wake     int
	deadline atomic.Int64 // SetDeadline's, in Unix nanoseconds; 0: none
	addr     net.Addr
	net      string       // "tcp" or "unix", for errors
	raddr    *net.TCPAddr // the peer of the connection accept4 last accepted (TCP)
	connAddr *net.TCPAddr // a TCP connection's local address; nil: a wildcard's, asked when wanted

	turn chan struct{} // one Accept at a time: flock is per open file description
	done chan struct{} // closed by Close

	mu     sync.Mutex // guards closed, users and fdOpen
	closed bool
	users  int // Accept calls still using fd
	fdOpen bool

	accepted, failed, wakeups, stranded atomic.Uint64

	evs [2]unix.EpollEvent // epoll_wait's events; one Accept waits at a time

	// watch, when set (by Watch, before the first Accept), is told what
	// Accept is doing: at each poll timeout while it waits, and when it
	// stops waiting.
	watch func(Wait)

	// hook, when set (by tests, before the first Accept), is called with
	// true just after the lock is taken and with false just before it is
	// let go.
	hook func(locked bool)
}

var _ net.Listener = (*Listener)(nil)

// Wait is what an Accept is doing, as Watch reports it.
type Wait int

const (
	// NotWaiting: no Accept waits for a connection (none was called, the
	// process is serving, or it waits for the lock).
	NotWaiting Wait = iota
	// Waiting: an Accept waits for a connection without a lock
	// (ListenWakeOne).
	Waiting
	// WaitingLocked: an Accept waits for a connection holding the lock
	// (Listen): no other process accepts on the socket meanwhile.
	WaitingLocked
)

// Watch makes the Listener call f with what Accept is doing: Waiting or
// WaitingLocked when it starts waiting for a connection and again at every
// poll timeout (about ten times a second) while it waits, NotWaiting when
// it stops. A process that stops calling f while it waits is stopped or
// wedged: recording the time of each call where another process sees it
// (the scoreboard) lets that process notice. Call Watch before the first
// Accept.
func (l *Listener) Watch(f func(Wait)) { l.watch = f }

func (l *Listener) report(w Wait) {
	if l.watch != nil {
		l.watch(w)
	}
}

// Stats counts what a Listener's Accept loop has done since Listen.
type Stats struct {
	// Accepted is the number of connections accepted.
	Accepted uint64
	// Failed is the number of accepts that found no connection (EAGAIN)
	// after poll reported the socket readable: a wake-up for a connection
	// another process took. Under the lock it stays 0 unless some process
	// accepts on the socket without the lock.
	Failed uint64
	// Wakeups is the number of times poll reported the socket readable.
	Wakeups uint64
	// Stranded is the number of connections ListenWakeOne's Accept took
	// with no wake-up for them: at a poll timeout, it tries to accept
	// anyway, for a connection whose wake-up the kernel gave to a process
	// that then did not accept it (one that stopped accepting just then).
	Stranded uint64
}

// Listen wraps the inherited listening socket f so that only the process
// (or Listener) holding an exclusive lock on lockPath accepts. Every process
// sharing the socket must call Listen itself with the same lockPath: flock
// belongs to an open file description, so a lock file descriptor inherited
// from the master would be shared by all children and exclude nobody.
// Listen creates the lock file (mode 0600) if it does not exist.
//
// Listen duplicates the socket and does not take f: the caller should close
// f once Listen returns. If f was wrapped by os.NewFile while the socket was
// in non-blocking mode, Go's netpoller watches f and would wake the process
// for every connection for as long as f stays open.
//
// Listen puts the socket's open file description in non-blocking mode, as
// Go's own net listeners do; that flag is shared by every process holding
// the socket. A master that hands children a file from TCPListener.File
// through exec.Cmd.ExtraFiles turns it back to blocking at every exec
// (os.File.Fd does that to files from net's File methods); it should pass a
// duplicate wrapped by os.NewFile instead.
func Listen(f *os.File, lockPath string) (*Listener, error) {
	fd, err := dupSocket(f)
	if err != nil {
		return nil, err
	}
	l, err := newListener(fd)
	if err == nil {
		l.lock, err = os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			err = fmt.Errorf("acceptmutex: opening lock file: %w", err)
		}
	}
	if err != nil {
		unix.Close(fd)
		if l != nil {
			unix.Close(l.wake)
		}
		return nil, err
	}
	return l, nil
}

// ListenWakeOne wraps the inherited listening socket f without a lock:
// each process (each Listener) waits for connections in an epoll instance
// of its own, with the socket registered level-triggered and
// EPOLLEXCLUSIVE, so that the kernel wakes one of the Listeners waiting
// at that moment for each new connection. A process that is stopped
// (SIGSTOP, a debugger), wedged or busy serving is not waiting, so it is
// never picked and holds nobody up: unlike a lock holder, it cannot stop
// the others from accepting. This is what Apache does on Linux with a
// single listener (no accept mutex; the kernel wakes one waiter).
//
// Listen's notes on f (a duplicate is taken, the socket is made
// non-blocking) hold for ListenWakeOne too.
func ListenWakeOne(f *os.File) (*Listener, error) {
	fd, err := dupSocket(f)
	if err != nil {
		return nil, err
	}
	l, err := newListener(fd)
	if err == nil {
		err = l.epollExclusive()
	}
	if err != nil {
		unix.Close(fd)
		if l != nil {
			unix.Close(l.wake)
		}
		return nil, err
	}
	return l, nil
}

// epollExclusive creates l's epoll instance with the socket registered
// EPOLLIN|EPOLLEXCLUSIVE (Linux 4.5 and later; plain EPOLLIN before).
func (l *Listener) epollExclusive() error {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("acceptmutex: %w", os.NewSyscallError("epoll_create1", err))
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(l.fd)}
	err = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, l.fd, &ev)
	if err == unix.EINVAL {
		// Before Linux 4.5: no EPOLLEXCLUSIVE; every waiting process is
		// woken, and one of them accepts.
		ev.Events = unix.EPOLLIN
		err = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, l.fd, &ev)
	}
	if err != nil {
		unix.Close(ep)
		return fmt.Errorf("acceptmutex: %w", os.NewSyscallError("epoll_ctl", err))
	}
	ev = unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(l.wake)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, l.wake, &ev); err != nil {
		unix.Close(ep)
		return fmt.Errorf("acceptmutex: %w", os.NewSyscallError("epoll_ctl", err))
	}
	l.ep = ep
	return nil
}

func dupSocket(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("acceptmutex: listening socket: %w", err)
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, fmt.Errorf("acceptmutex: listening socket: %w", err)
	}
	if dupErr != nil {
		return -1, fmt.Errorf("acceptmutex: duplicating listening socket: %w", os.NewSyscallError("fcntl", dupErr))
	}
	return fd, nil
}

func newListener(fd int) (*Listener, error) {
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil {
		return nil, fmt.Errorf("acceptmutex: listening socket: %w", os.NewSyscallError("getsockopt", err))
	} else if v == 0 {
		return nil, errors.New("acceptmutex: socket is not listening")
	}
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
		return nil, fmt.Errorf("acceptmutex: listening socket: %w", os.NewSyscallError("getsockopt", err))
	} else if v != unix.SOCK_STREAM {
		return nil, errors.New("acceptmutex: socket is not a stream socket")
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("acceptmutex: listening socket: %w", os.NewSyscallError("getsockname", err))
	}
	addr, network, err := sockaddrToAddr(sa)
	if err != nil {
		return nil, err
	}
	if network == "tcp" {
		if err := sockconn.Prepare(fd); err != nil {
			return nil, fmt.Errorf("acceptmutex: listening socket: %w", err)
		}
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("acceptmutex: listening socket: %w", os.NewSyscallError("fcntl", err))
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("acceptmutex: %w", os.NewSyscallError("eventfd", err))
	}
	l := &Listener{
		fd:     fd,
		ep:     -1,
		wake:   wake,
		addr:   addr,
		net:    network,
		turn:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		fdOpen: true,
	}
	if a, ok := addr.(*net.TCPAddr); ok && !a.IP.IsUnspecified() {
		l.connAddr = a
	}
	return l, nil
}

func sockaddrToAddr(sa unix.Sockaddr) (net.Addr, string, error) {
	if a := sockconn.TCPAddr(sa); a != nil {
		return a, "tcp", nil
	}
	switch sa := sa.(type) {
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: "unix"}, "unix", nil
	default:
		return nil, "", fmt.Errorf("acceptmutex: unsupported socket address %T", sa)
	}
}

// Accept waits for the lock, then for a connection, and returns it. It
// holds the lock only while it waits for a connection and lets it go as soon
// as it has accepted, so a process busy serving never holds it. After Close
// it returns an error that matches net.ErrClosed (errors.Is).
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case l.turn <- struct{}{}:
	case <-l.done:
		return nil, l.opError(net.ErrClosed)
	}
	defer func() { <-l.turn }()
	if !l.use() {
		return nil, l.opError(net.ErrClosed)
	}
	defer l.release()
	for {
		if l.isClosed() {
			return nil, l.opError(net.ErrClosed)
		}
		if l.expired() {
			return nil, l.opError(os.ErrDeadlineExceeded)
		}
		wait := Waiting
		if l.lock != nil {
			if err := l.lockFile(); err != nil {
				return nil, err
			}
			wait = WaitingLocked
		}
		// Keep the lock while no connection comes: letting it go at each
		// poll timeout would wake a waiter only for it to lose the lock to
		// us again, and a waiter that loses re-queues behind us and wakes
		// every waiter queued behind it (Linux's flock). Close is noticed
		// at the next timeout.
		nfd, err := -1, error(nil)
		for err == nil && nfd < 0 && !l.isClosed() && !l.expired() {
			l.report(wait)
			nfd, err = l.pollAccept()
		}
		l.report(NotWaiting)
		if l.lock != nil {
			l.unlockFile()
		}
		if err != nil {
			return nil, err
		}
		if nfd >= 0 {
			return l.newConn(nfd)
		}
	}
}

// SetDeadline sets the time after which Accept returns an error matching
// os.ErrDeadlineExceeded (its Timeout method reports true), as
// net.TCPListener's does: a waiting Accept returns at once when t has
// passed. The zero time means no deadline.
func (l *Listener) SetDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	l.deadline.Store(ns)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.fdOpen {
		return l.opError(net.ErrClosed)
	}
	if ns == 0 {
		return nil // a waiter at most wakes early and waits again
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(l.wake, one[:])
	return nil
}

// expired reports whether SetDeadline's deadline has passed.
func (l *Listener) expired() bool {
	d := l.deadline.Load()
	return d != 0 && time.Now().UnixNano() >= d
}

// waitFor is how long, in milliseconds, a poll may wait: pollTimeout, or
// less when a deadline comes sooner.
func (l *Listener) waitFor() int {
	d := l.deadline.Load()
	if d == 0 {
		return pollTimeout
	}
	ms := (d-time.Now().UnixNano())/int64(time.Millisecond) + 1
	return int(max(0, min(ms, pollTimeout)))
}

// drainWake empties the wake eventfd.
func (l *Listener) drainWake() {
	var b [8]byte
	_, _ = unix.Read(l.wake, b[:])
}

// pollAccept waits up to pollTimeout for the socket to become readable and
// accepts. It returns -1 and no error when the caller should try again.
// ListenWakeOne's Listener waits in epoll_wait instead of poll.
func (l *Listener) pollAccept() (int, error) {
	if l.ep >= 0 {
		n, err := unix.EpollWait(l.ep, l.evs[:], l.waitFor())
		ready := false
		for _, ev := range l.evs[:max(n, 0)] {
			if int(ev.Fd) == l.wake {
				l.drainWake()
			} else {
				ready = true
			}
		}
		if err == nil && n > 0 && (!ready || l.expired()) {
			// A new deadline: the caller checks it. A connection whose
			// wake-up came with it stays in the backlog; if the kernel
			// woke no other Listener for it, one takes it at its next
			// poll timeout (Stranded).
			return -1, nil
		}
		if err == nil && n == 0 && !l.isClosed() && !l.expired() {
			// A connection whose wake-up went to another process that did
			// not take it (it was closing its Listener just then) waits
			// in the backlog with no wake-up to come: take it now.
			if nfd, err := l.accept4(); err == nil {
				l.accepted.Add(1)
				l.stranded.Add(1)
				return nfd, nil
			}
			return -1, nil
		}
		if err == unix.EINTR || (err == nil && n == 0) {
			return -1, nil
		}
		if err != nil {
			return -1, l.opError(os.NewSyscallError("epoll_wait", err))
		}
	} else {
		fds := []unix.PollFd{{Fd: int32(l.fd), Events: unix.POLLIN}, {Fd: int32(l.wake), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, l.waitFor())
		if err == unix.EINTR || (err == nil && n == 0) {
			return -1, nil
		}
		if err != nil {
			return -1, l.opError(os.NewSyscallError("poll", err))
		}
		if fds[0].Revents&unix.POLLNVAL != 0 {
			return -1, l.opError(os.NewSyscallError("poll", unix.EBADF))
		}
		if fds[1].Revents != 0 {
			l.drainWake()
			if fds[0].Revents == 0 || l.expired() {
				return -1, nil // a new deadline: the caller checks it
			}
		}
	}
	l.wakeups.Add(1)
	if l.isClosed() {
		return -1, nil
	}
	nfd, err := l.accept4()
	switch err {
	case nil:
		l.accepted.Add(1)
		return nfd, nil
	case unix.EAGAIN:
		l.failed.Add(1)
		return -1, nil
	case unix.EINTR, unix.ECONNABORTED:
		return -1, nil
	default:
		return -1, l.opError(os.NewSyscallError("accept4", err))
	}
}

// accept4 accepts a connection: on a TCP socket non-blocking, its peer's
// address kept for newConn (sockconn.Accept); on a unix socket blocking,
// so that os.NewFile does not register it with the netpoller only for
// net.FileConn to register a duplicate (which net.FileConn makes
// non-blocking).
func (l *Listener) accept4() (int, error) {
	if l.net == "tcp" {
		nfd, raddr, err := sockconn.Accept(l.fd)
		l.raddr = raddr
		return nfd, err
	}
	nfd, _, err := unix.Accept4(l.fd, unix.SOCK_CLOEXEC)
	return nfd, err
}

// newConn makes a net.Conn of the accepted socket nfd: a sockconn.Conn for
// TCP (the options net would set per connection are the listening
// socket's, which it inherits), net.FileConn's for a unix socket.
func (l *Listener) newConn(nfd int) (net.Conn, error) {
	if l.net == "tcp" {
		c, err := sockconn.NewConn(nfd, l.connAddr, l.raddr)
		if err != nil {
			return nil, l.opError(err)
		}
		return c, nil
	}
	f := os.NewFile(uintptr(nfd), "acceptmutex-conn")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, l.opError(err)
	}
	return c, nil
}

// lockFile takes the lock. It returns an error matching net.ErrClosed if
// the Listener is closed while it waits.
func (l *Listener) lockFile() error {
	err := l.flock(unix.LOCK_EX | unix.LOCK_NB)
	if err == unix.EWOULDBLOCK {
		// Somebody else holds it: wait in a goroutine, so that Close can
		// make Accept return without the lock. If the wait is abandoned,
		// the goroutine gets the lock after Close has closed the lock
		// file; its descriptor is really closed when flock returns, which
		// lets the lock go.
		ch := make(chan error, 1)
		go func() { ch <- l.flock(unix.LOCK_EX) }()
		select {
		case err = <-ch:
		case <-l.done:
			return l.opError(net.ErrClosed)
		}
	}
	if err != nil {
		if l.isClosed() {
			return l.opError(net.ErrClosed)
		}
		return l.opError(fmt.Errorf("locking %s: %w", l.lock.Name(), err))
	}
	if l.hook != nil {
		l.hook(true)
	}
	return nil
}

func (l *Listener) unlockFile() {
	if l.hook != nil {
		l.hook(false)
	}
	// After Close the lock file is closed, which let the lock go already.
	_ = l.flock(unix.LOCK_UN)
}

// flock runs flock(2) on the lock file, retrying on EINTR. The file's
// descriptor stays open (and its number unused by anything else) until
// flock returns, even if Close closes the file meanwhile.
func (l *Listener) flock(how int) error {
	rc, err := l.lock.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Flock(int(fd), how)
			if ferr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if ferr != nil && ferr != unix.EWOULDBLOCK {
		return os.NewSyscallError("flock", ferr)
	}
	return ferr
}

// use registers an Accept as a user of the socket descriptor; it reports
// whether the Listener is still open.
func (l *Listener) use() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.users++
	return true
}

// release undoes use, closing the socket descriptor if Close is waiting
// for the last user.
func (l *Listener) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.users--
	l.closeFDLocked()
}

func (l *Listener) closeFDLocked() {
	if l.closed && l.users == 0 && l.fdOpen {
		l.fdOpen = false
		unix.Close(l.fd)
		unix.Close(l.wake)
		if l.ep >= 0 {
			unix.Close(l.ep)
		}
	}
}

func (l *Listener) isClosed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// Close stops the Listener: a blocked Accept returns an error matching
// net.ErrClosed within about 100 ms (at once if it is waiting for the lock),
// and the lock is let go at once. Close does not wait for Accept to return;
// the socket descriptor is closed when the last Accept has. A goroutine that
// was waiting for the lock stays blocked in flock until the lock comes free,
// then lets it go at once. The listening socket itself stays open in every
// other process holding it. Closing a closed Listener returns an error
// matching net.ErrClosed.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return l.opError(net.ErrClosed)
	}
	l.closed = true
	close(l.done)
	if l.ep >= 0 && l.fdOpen {
		// The kernel gives a connection's exclusive wake-up to the first
		// epoll set watching the socket in which a thread waits: an Accept
		// still in epoll_wait here (until its poll timeout) would take it
		// and, closed, not accept; the connection would wait in the
		// backlog with no wake-up for the processes that do accept (a
		// graceful restart's new children). Out of the set, it is never
		// woken again.
		_ = unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, l.fd, nil)
	}
	l.closeFDLocked()
	l.mu.Unlock()
	if l.lock == nil {
		return nil
	}
	// Closing our only descriptor of the lock file's open file description
	// lets the lock go, unless flock is running on it right now (then when
	// flock returns).
	if err := l.lock.Close(); err != nil {
		return l.opError(err)
	}
	return nil
}

// QueueDepth is sockconn.QueueDepth for the Listener's socket.
func (l *Listener) QueueDepth() (depth, limit int, err error) {
	if !l.use() {
		return 0, 0, l.opError(net.ErrClosed)
	}
	defer l.release()
	return sockconn.QueueDepth(l.fd)
}

// Addr returns the listening socket's address.
func (l *Listener) Addr() net.Addr { return l.addr }

// Stats returns the Listener's counters.
func (l *Listener) Stats() Stats {
	return Stats{
		Accepted: l.accepted.Load(),
		Failed:   l.failed.Load(),
		Wakeups:  l.wakeups.Load(),
		Stranded: l.stranded.Load(),
	}
}

func (l *Listener) opError(err error) error {
	return &net.OpError{Op: "accept", Net: l.net, Addr: l.addr, Err: err}
}
