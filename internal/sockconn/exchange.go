package sockconn

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// An Exchange is one request and its answer on a new connection to a
// unix socket, kept out of the netpoller: its socket is made, connected,
// written, read and closed with raw system calls, and waited on through
// one epoll instance of the package's own (the poller), which is itself in
// the netpoller. It is what a child does with an app server that closes
// its connection after each answer (gunicorn's sync workers, unicorn):
// a Conn costs such a connection an os.File, a descriptor flag read, a
// finalizer, a removal from the netpoller before the close, and a close
// through the Go scheduler's system call entry, which, batched
// (CloseSoon), still wakes the runtime's monitor thread and holds the
// child's P while a batch closes. An Exchange costs none of these; an
// answer that is not read whole goes on as a Conn (Conn).
//
// An Exchange is used by one goroutine at a time. A read waits until the
// peer answers or closes, or until the read deadline (SetReadDeadline),
// which the poller looks at twice a second.
type Exchange struct {
	fd    int
	armed bool          // in the poller's map (and, but for a failed add, its epoll instance)
	sent  bool          // written to, not read from since: a read waits first
	ready chan struct{} // the poller's word that fd may be ready
	addr  *UnixAddr
	// deadline bounds the reads' waits (unix nanoseconds; 0: none); the
	// poller's sweep sets expired when a wait outlives it.
	deadline atomic.Int64
	expired  atomic.Bool
}

// UnixAddr is a unix socket's address, made once for many Exchanges.
type UnixAddr struct {
	net  *net.UnixAddr
	sa   unix.RawSockaddrUnix
	size uintptr
}

// NewUnixAddr returns path's address (a name starting with @ is in the
// abstract namespace, as net's), or EINVAL for a path a socket cannot
// have.
func NewUnixAddr(path string) (*UnixAddr, error) {
	a := &UnixAddr{net: &net.UnixAddr{Name: path, Net: "unix"}}
	if path == "" || len(path) >= len(a.sa.Path) {
		return nil, &net.OpError{Op: "dial", Net: "unix", Addr: a.net, Err: os.NewSyscallError("connect", unix.EINVAL)}
	}
	a.sa.Family = unix.AF_UNIX
	for i := range len(path) {
		a.sa.Path[i] = int8(path[i])
	}
	a.size = uintptr(unsafe.Offsetof(a.sa.Path)) + uintptr(len(path)) + 1
	if path[0] == '@' {
		a.sa.Path[0] = 0
		a.size-- // no terminating NUL in the abstract namespace
	}
	return a, nil
}

// connect returns a new non-blocking socket connected to a, with raw
// system calls: a connect to a unix socket never waits, it succeeds or
// fails at once (EAGAIN when the listener's accept queue is full, as
// net.Dial does).
func (a *UnixAddr) connect() (int, error) {
	fd, _, e := unix.RawSyscall(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if e != 0 {
		return -1, a.dialError(os.NewSyscallError("socket", e))
	}
	for {
		_, _, e = unix.RawSyscall(unix.SYS_CONNECT, fd, uintptr(unsafe.Pointer(&a.sa)), a.size)
		if e != unix.EINTR {
			break
		}
	}
	if e != 0 {
		unix.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
		return -1, a.dialError(os.NewSyscallError("connect", e))
	}
	return int(fd), nil
}

func (a *UnixAddr) dialError(err error) error {
	return &net.OpError{Op: "dial", Net: "unix", Addr: a.net, Err: err}
}

// Dial connects to a and returns the connection as a Conn.
func (a *UnixAddr) Dial() (*Conn, error) {
	fd, err := a.connect()
	if err != nil {
		return nil, err
	}
	return a.conn(fd)
}

// conn makes a Conn of the connected socket fd, which it takes.
func (a *UnixAddr) conn(fd int) (*Conn, error) {
	f := os.NewFile(uintptr(fd), a.net.Name) // registers it with the netpoller; its fcntl is raw
	if f == nil {
		return nil, a.dialError(os.NewSyscallError("connect", unix.EBADF))
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, a.dialError(err)
	}
	return &Conn{f: f, rc: rc, unix: true, raddr: a.net}, nil
}

// Exchange connects to a for one exchange.
func (a *UnixAddr) Exchange() (*Exchange, error) {
	fd, err := a.connect()
	if err != nil {
		return nil, err
	}
	return &Exchange{fd: fd, addr: a, ready: readyChan()}, nil
}

// Write writes all of p, waiting for room when the socket has none.
func (x *Exchange) Write(p []byte) (int, error) {
	for n := 0; ; {
		var done bool
		var err error
		n, done, err = WriteFD(uintptr(x.fd), p, n)
		if done || err != nil {
			x.sent = true
			return n, x.opError("write", err)
		}
		if err := x.wait(unix.EPOLLOUT); err != nil {
			return n, err
		}
	}
}

// Read reads into p (not empty) once something is there: n bytes, or
// io.EOF when the peer has closed its side. The first read after a write
// waits before it tries: a peer does not answer within the microsecond
// since the write (a read then would find nothing and cost a system call),
// and a registration finds an answer already there.
func (x *Exchange) Read(p []byte) (int, error) {
	if x.sent {
		x.sent = false
		if err := x.wait(unix.EPOLLIN); err != nil {
			return 0, err
		}
	}
	for {
		n, done, err := ReadFD(uintptr(x.fd), p)
		if done {
			if err == io.EOF {
				return n, err
			}
			return n, x.opError("read", err)
		}
		if err := x.wait(unix.EPOLLIN); err != nil {
			return 0, err
		}
	}
}

func (x *Exchange) opError(op string, err error) error {
	if err == nil {
		return nil
	}
	return &net.OpError{Op: op, Net: "unix", Addr: x.addr.net, Err: err}
}

// wait asks the poller to say when the socket has events (EPOLLIN,
// EPOLLOUT), or has an error or a hang-up, and waits for its word. The
// registration is one-shot: the kernel disarms it once it has reported,
// so the word comes once; a registration made while the socket is ready
// already is reported at once.
func (x *Exchange) wait(events uint32) error {
	if x.expired.Load() {
		return x.opError("read", os.ErrDeadlineExceeded)
	}
	if err := thePoller.start(); err != nil {
		return x.opError("wait", err)
	}
	op := unix.EPOLL_CTL_MOD
	if !x.armed {
		op = unix.EPOLL_CTL_ADD
		thePoller.mu.Lock()
		thePoller.waiting[x.fd] = x
		if !thePoller.sweeping {
			thePoller.sweeping = true
			go thePoller.sweep()
		}
		thePoller.mu.Unlock()
		x.armed = true // in the map: forget takes it out, whatever the add says
	}
	ev := unix.EpollEvent{Events: events | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(x.fd)}
	if _, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(thePoller.epfd), uintptr(op), uintptr(x.fd),
		uintptr(unsafe.Pointer(&ev)), 0, 0); e != 0 {
		return x.opError("epoll_ctl", os.NewSyscallError("epoll_ctl", e))
	}
	<-x.ready
	if x.expired.Load() {
		return x.opError("read", os.ErrDeadlineExceeded)
	}
	return nil
}

// SetReadDeadline bounds the waits of the reads that follow (the zero
// time: no bound). A read waiting past it, or starting after it, fails
// with an error that wraps os.ErrDeadlineExceeded (a net.Error whose
// Timeout is true), within sweepEvery of it.
func (x *Exchange) SetReadDeadline(t time.Time) {
	var d int64
	if !t.IsZero() {
		d = t.UnixNano()
	}
	x.deadline.Store(d)
	x.expired.Store(false)
}

// forget stops the poller's words for the socket; del takes it out of the
// epoll instance too.
func (x *Exchange) forget(del bool) {
	if !x.armed {
		return
	}
	thePoller.mu.Lock()
	delete(thePoller.waiting, x.fd)
	thePoller.mu.Unlock()
	if del {
		var ev unix.EpollEvent
		unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(thePoller.epfd), unix.EPOLL_CTL_DEL, uintptr(x.fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
	}
	x.armed = false
}

// Close closes the connection, raw. The close takes the socket out of
// the epoll instance (when no process forked meanwhile still holds it
// until its exec: its one-shot registration, if armed, may then report
// once more, a word for whichever Exchange has the same descriptor by
// then, which reads, finds nothing, and waits again).
func (x *Exchange) Close() {
	if x.fd < 0 {
		return
	}
	x.forget(false)
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(x.fd), 0, 0)
	x.fd = -1
	putReadyChan(x.ready)
	x.ready = nil
}

// Conn hands the connection over as a Conn (in the netpoller, with
// deadlines), for what the exchange leaves to net/http: the Exchange is
// done.
func (x *Exchange) Conn() (*Conn, error) {
	x.forget(true)
	fd := x.fd
	x.fd = -1
	putReadyChan(x.ready)
	x.ready = nil
	return x.addr.conn(fd)
}

// readyChans are the Exchanges' channels, reused.
var readyChans = sync.Pool{New: func() any { return make(chan struct{}, 1) }}

func readyChan() chan struct{} { return readyChans.Get().(chan struct{}) }

func putReadyChan(c chan struct{}) {
	select { // empty, for its next Exchange
	case <-c:
	default:
	}
	readyChans.Put(c)
}

// poller is the epoll instance the Exchanges wait on, and the goroutine
// that waits on it through the netpoller and tells each Exchange whose
// socket has events.
type poller struct {
	once    sync.Once
	err     error
	epfd    int
	f       *os.File
	mu      sync.Mutex
	waiting map[int]*Exchange // by descriptor
	// sweeping: sweep runs; it stops once no Exchange is armed, and the
	// next one armed starts it again.
	sweeping bool
}

// sweepEvery is how often the poller looks for waits past their deadline.
const sweepEvery = 500 * time.Millisecond

var thePoller poller

func (p *poller) start() error {
	p.once.Do(func() {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			p.err = os.NewSyscallError("epoll_create1", err)
			return
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			p.err = os.NewSyscallError("fcntl", err)
			return
		}
		p.epfd = fd
		p.f = os.NewFile(uintptr(fd), "exchange poller")
		p.waiting = make(map[int]*Exchange)
		rc, err := p.f.SyscallConn()
		if err != nil {
			p.err = err
			return
		}
		go p.run(rc)
	})
	return p.err
}

// run waits for the epoll instance to have events, takes them, and tells
// their Exchanges; forever (the instance is the process's). It stays in
// one RawConn.Read, so that no word of the netpoller is lost between two
// waits: a readiness that comes while run takes events makes the next
// wait return at once.
func (p *poller) run(rc syscall.RawConn) {
	var evs [64]unix.EpollEvent
	// Read returns only when the instance is closed, which it never is.
	_ = rc.Read(func(epfd uintptr) bool {
		for {
			n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, epfd, uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), 0, 0, 0)
			if e == unix.EINTR {
				continue
			}
			if e != 0 || n == 0 {
				return false // nothing more: the netpoller waits
			}
			p.mu.Lock()
			for _, ev := range evs[:n] {
				if x := p.waiting[int(ev.Fd)]; x != nil {
					tell(x.ready)
				}
			}
			p.mu.Unlock()
			if int(n) < len(evs) {
				return false
			}
		}
	})
}

// tell gives an Exchange's wait its word (once: a word not yet taken
// stands).
func tell(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// sweep ends, every sweepEvery, the waits of the Exchanges past their
// read deadline, while any Exchange is armed (an idle child is not woken
// for it). An Exchange's wait is in the map while it is armed, whether it
// waits or not: one that does not is told too, and its next wait returns
// at once, as its deadline has passed.
func (p *poller) sweep() {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for range t.C {
		now := time.Now().UnixNano()
		p.mu.Lock()
		if len(p.waiting) == 0 {
			p.sweeping = false
			p.mu.Unlock()
			return
		}
		for _, x := range p.waiting {
			if d := x.deadline.Load(); d != 0 && now >= d && x.expired.CompareAndSwap(false, true) {
				tell(x.ready)
			}
		}
		p.mu.Unlock()
	}
}
