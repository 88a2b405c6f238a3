package sockconn

import (
	"io"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Raw system calls.
//
// A read or write on a non-blocking socket never blocks, so the Go
// scheduler need not hear of it: made with RawSyscall, it skips the
// runtime's system call entry and exit (entersyscall, exitsyscall), and
// the netpoller still waits when the socket is not ready (EAGAIN). The
// entry is what costs a child that is often idle most: while its Ps are
// all idle, the runtime's monitor thread (sysmon) sleeps until the next
// system call through the entry wakes it (a futex wake and a context
// switch), and, woken, it polls every 20 µs for a while before it sleeps
// again. A child in front of an app that answers in about 100 µs goes
// idle between most requests, and paid that wake-up once per request
// for the one system call that was not raw. Connections to the app are
// made (UnixAddr.Dial, UnixAddr.Exchange), read, written and closed
// (CloseSoon, Exchange.Close) without the entry, and so is the client's
// side of a keep-alive connection.

// ReadFD reads once from the non-blocking socket fd into p (not empty)
// with a raw system call: n bytes, and io.EOF when the peer has closed
// its side. done is false when there is nothing to read yet (EAGAIN): the
// caller waits on the netpoller and tries again.
func ReadFD(fd uintptr, p []byte) (n int, done bool, err error) {
	for {
		r, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
		switch e {
		case 0:
			if r == 0 {
				return 0, true, io.EOF
			}
			return int(r), true, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, false, nil
		default:
			return 0, true, os.NewSyscallError("read", e)
		}
	}
}

// WriteFD writes p[from:] to the non-blocking socket fd with raw system
// calls, until all of p is written (n is len(p)), the socket has no room
// (done false: the caller waits on the netpoller and goes on from n), or
// an error.
func WriteFD(fd uintptr, p []byte, from int) (n int, done bool, err error) {
	n = from
	for n < len(p) {
		q := p[n:]
		r, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(q))), uintptr(len(q)))
		switch e {
		case 0:
			n += int(r)
		case unix.EINTR:
		case unix.EAGAIN:
			return n, false, nil
		default:
			return n, true, os.NewSyscallError("write", e)
		}
	}
	return n, true, nil
}

// rawOps are a Conn's raw reads and writes, made on its first Read or
// Write: a connection the child's fast path serves (it reads and writes
// through its own) costs nothing here, and an event child's idle
// connections no memory.
type rawOps struct{ rd, wr rawOp }

// ops returns c's rawOps, made once.
func (c *Conn) ops() *rawOps {
	if o := c.raw.Load(); o != nil {
		return o
	}
	c.raw.CompareAndSwap(nil, new(rawOps))
	return c.raw.Load()
}

// rawOp is one direction of a Conn's raw I/O: the call under way, under
// mu (net.Conn lets several goroutines read, or write, at once), and its
// callbacks, made on first use.
type rawOp struct {
	mu     sync.Mutex
	buf    []byte
	n      int
	err    error
	rf, wf func(fd uintptr) bool
}

func (o *rawOp) read(rc syscall.RawConn, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.rf == nil {
		o.rf = func(fd uintptr) bool {
			var done bool
			o.n, done, o.err = ReadFD(fd, o.buf)
			return done
		}
	}
	o.buf, o.n, o.err = p, 0, nil
	err := rc.Read(o.rf)
	o.buf = nil
	if err != nil {
		return 0, err
	}
	return o.n, o.err
}

func (o *rawOp) write(rc syscall.RawConn, p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.wf == nil {
		o.wf = func(fd uintptr) bool {
			var done bool
			o.n, done, o.err = WriteFD(fd, o.buf, o.n)
			return done
		}
	}
	o.buf, o.n, o.err = p, 0, nil
	err := rc.Write(o.wf)
	o.buf = nil
	if err == nil {
		err = o.err
	}
	return o.n, err
}

// Closing later.
//
// A close cannot be raw: os closes a file through the system call entry,
// and the file must be closed through os, which owns its descriptor and
// its place in the netpoller. CloseSoon puts the closes of connections
// nobody waits on any more together, so that the entry comes once for a
// batch, not once for each request.
const (
	closeDelay = 10 * time.Millisecond // at most this long
	closeBatch = 128                   // or this many at once
)

var later struct {
	mu    sync.Mutex
	files []*os.File
	timer *time.Timer
}

// CloseSoon closes the connection within closeDelay, with the others
// closed then: for a connection whose peer has said all it will (an app
// that closes after each answer) and on which nothing reads or writes any
// more. The connection counts as closed from the call on.
func (c *Conn) CloseSoon() {
	if c.closed.Swap(true) {
		return
	}
	later.mu.Lock()
	later.files = append(later.files, c.f)
	var now []*os.File
	switch {
	case len(later.files) >= closeBatch:
		now, later.files = later.files, nil
	case len(later.files) == 1:
		if later.timer == nil {
			later.timer = time.AfterFunc(closeDelay, closeLater)
		} else {
			later.timer.Reset(closeDelay)
		}
	}
	later.mu.Unlock()
	closeAll(now)
}

func closeLater() {
	later.mu.Lock()
	fs := later.files
	later.files = nil
	later.mu.Unlock()
	closeAll(fs)
}

// closeAll closes fs. Their errors go nowhere: a close that fails has
// released the descriptor all the same, and one closed already (Close
// after CloseSoon) has nothing to say.
func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
