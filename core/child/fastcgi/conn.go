package fastcgi

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/phasedhq/phased/core/child/internal/gateway"
)

// maxIgnored bounds the bytes of records a request may skip (unknown types,
// other request ids, management records), so that a server cannot keep a
// request busy forever with records it does not need.
const maxIgnored = 1 << 20

// conn is one connection to the FastCGI server.
type conn struct {
	nc          net.Conn
	br          *bufio.Reader // reads through the conn, which sets the read deadline
	readTimeout time.Duration
	sendTimeout time.Duration
	idleSince   time.Time
	ignored     int // bytes of records skipped for the current request

	wmu     sync.Mutex
	stopped bool // no more writes for the current request
}

// readers holds the read buffers of closed connections.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}

func newConn(nc net.Conn, readTimeout, sendTimeout time.Duration) *conn {
	c := &conn{nc: nc, readTimeout: readTimeout, sendTimeout: sendTimeout}
	c.br = readers.Get().(*bufio.Reader)
	c.br.Reset(c)
	return c
}

// close closes the connection and gives its read buffer back; no one may
// use c after.
func (c *conn) close() error {
	err := c.nc.Close()
	if c.br != nil {
		c.br.Reset(nil)
		readers.Put(c.br)
		c.br = nil
	}
	return err
}

// Read reads from the connection, giving up after the read timeout.
func (c *conn) Read(p []byte) (int, error) {
	if c.readTimeout > 0 {
		c.nc.SetReadDeadline(time.Now().Add(c.readTimeout))
	}
	return c.nc.Read(p)
}

// errStopped is returned by write after stopWriting.
var errStopped = errors.New("the request was answered before it was sent in full")

// write writes b, giving up after the send timeout or once stopWriting
// was called.
func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	if c.stopped {
		c.wmu.Unlock()
		return errStopped
	}
	if c.sendTimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.sendTimeout))
	}
	c.wmu.Unlock()
	_, err := c.nc.Write(b)
	return err
}

// stopWriting makes the write under way, if any, and every later one fail
// at once.
func (c *conn) stopWriting() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.stopped = true
	c.nc.SetWriteDeadline(aLongTimeAgo)
}

// reset readies a connection whose request ended cleanly for the next one.
func (c *conn) reset() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.stopped = false
	c.nc.SetDeadline(time.Time{})
}

// aLongTimeAgo is a deadline that has passed.
var aLongTimeAgo = time.Unix(1, 0)

// readHeader reads the next record header. An EOF before or inside it is
// io.ErrUnexpectedEOF: every caller still expects a record.
func (c *conn) readHeader() (header, error) {
	var b [headerLen]byte
	if _, err := io.ReadFull(c.br, b[:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return header{}, fmt.Errorf("reading a record: %w", err)
	}
	return parseHeader(b[:])
}

// discard skips n bytes of the stream.
func (c *conn) discard(n int) error {
	if _, err := c.br.Discard(n); err != nil {
		return fmt.Errorf("reading a record: %w", eofIsUnexpected(err))
	}
	return nil
}

// skip skips a record the request does not need, within maxIgnored.
func (c *conn) skip(h header) error {
	c.ignored += int(h.length) + int(h.padding)
	if c.ignored > maxIgnored {
		return fmt.Errorf("%w: more than %d bytes of records of no use (last of type %d)", ErrProtocol, maxIgnored, h.typ)
	}
	return c.discard(int(h.length) + int(h.padding))
}

// copyTo copies the next n bytes of the stream to w through the reader's
// own buffer, without allocating. Errors from w are ignored: what is copied
// is consumed either way.
func (c *conn) copyTo(w io.Writer, n int) error {
	for n > 0 {
		b, err := c.br.Peek(min(n, c.br.Size()))
		if len(b) == 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			return fmt.Errorf("reading a record: %w", eofIsUnexpected(err))
		}
		w.Write(b)
		c.br.Discard(len(b))
		n -= len(b)
	}
	return nil
}

// alive reports whether an idle connection can still carry a request: the
// server has not closed it and sent nothing unasked. It peeks at the socket
// without blocking; a connection that is no socket is taken as alive.
func (c *conn) alive() bool {
	return c.br.Buffered() == 0 && gateway.SocketAlive(c.nc)
}

func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
