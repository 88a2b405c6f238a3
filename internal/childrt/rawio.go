package childrt

import (
	"net"
	"syscall"

	"github.com/phasedhq/phased/internal/sockconn"
)

// rawIO reads and writes a connection's non-blocking socket with raw
// system calls, through the connection's syscall.RawConn: the netpoller
// still waits when the socket is not ready (EAGAIN), and the connection's
// deadlines still hold, but a read or write that succeeds at once does not
// go through the runtime's system call entry and exit (entersyscall,
// exitsyscall).
//
// That entry is what costs a prefork child most: between two requests its
// only P is idle, so sysmon sleeps until the next system call wakes it (a
// futex wake and a context switch), and having woken it goes back to sleep
// shortly after; dozens of children on a few cores pay that per request.
// Threaded children gain too, less: the entry and exit are bookkeeping a
// non-blocking call does not need (worker and event, wrk -t1 -c50,
// interleaved, 6 B and 4 KiB: 7 to 10% more requests per second). read and
// write on a non-blocking socket never block, so the scheduler loses
// nothing by not hearing of them.
type rawIO struct {
	rc  syscall.RawConn
	buf []byte // what the pending call reads into or writes from
	n   int    // bytes read, or written so far
	err error  // the system call's error; nil on success and EAGAIN

	readFn, writeFn func(fd uintptr) bool
}

// rawIOEnabled is true but in BenchmarkServe's -plainio variants, which
// measure what rawIO buys.
var rawIOEnabled = true

// sockOf returns the socket below c (c itself, or what a slotConn, which
// adds nothing to Read and Write, wraps) and its raw connection, nil when
// it has none.
func sockOf(c net.Conn) (net.Conn, syscall.RawConn) {
	if sc, ok := c.(*slotConn); ok {
		c = sc.Conn
	}
	conn, ok := c.(syscall.Conn)
	if !ok {
		return c, nil
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return c, nil
	}
	return c, rc
}

// newRawIO returns a rawIO for c's socket, or nil when c has none. c may
// be a slotConn, which adds nothing to Read and Write; not a replayConn,
// whose Read returns bytes the socket no longer has.
func newRawIO(c net.Conn) *rawIO {
	_, rc := sockOf(c)
	if rc == nil {
		return nil
	}
	r := &rawIO{rc: rc}
	r.readFn = r.read
	r.writeFn = r.write
	return r
}

func (r *rawIO) read(fd uintptr) bool {
	var done bool
	r.n, done, r.err = sockconn.ReadFD(fd, r.buf)
	return done
}

func (r *rawIO) write(fd uintptr) bool {
	var done bool
	r.n, done, r.err = sockconn.WriteFD(fd, r.buf, r.n)
	return done
}

// Read reads into p (not empty) as net.Conn's Read does.
func (r *rawIO) Read(p []byte) (int, error) {
	r.buf, r.n, r.err = p, 0, nil
	err := r.rc.Read(r.readFn)
	r.buf = nil
	if err != nil {
		return 0, err
	}
	return r.n, r.err
}

// Write writes all of p as net.Conn's Write does.
func (r *rawIO) Write(p []byte) (int, error) {
	r.buf, r.n, r.err = p, 0, nil
	err := r.rc.Write(r.writeFn)
	r.buf = nil
	if err == nil {
		err = r.err
	}
	return r.n, err
}
