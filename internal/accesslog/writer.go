package accesslog

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"syscall"
	"time"
)

const (
	// DefaultFlushInterval is the FlushInterval of a zero WriterOptions.
	DefaultFlushInterval = 200 * time.Millisecond
	// DefaultBufferSize is the BufferSize of a zero WriterOptions.
	DefaultBufferSize = 32 << 10
)

// ErrClosed is returned by [Writer.Write] after [Writer.Close].
var ErrClosed = errors.New("accesslog: writer closed")

// WriterOptions configures a [Writer].
type WriterOptions struct {
	// FlushInterval bounds how long a line waits in the buffer: the first
	// line added to an empty batch arms a timer that writes the batch when
	// it fires. The zero value means DefaultFlushInterval (200ms); a
	// negative value turns the timer off, so lines are written only when
	// the buffer is full and on Flush and Close.
	FlushInterval time.Duration
	// BufferSize is the most bytes written with one write: a batch is
	// written when adding a line would make it larger, and a single line
	// larger than BufferSize is written alone. The zero value (or a
	// negative one) means DefaultBufferSize (32 KiB); 1 writes every line
	// at once.
	BufferSize int
	// Log hears of lines lost to failed writes (a full disk, an I/O
	// error): an error the first time each cause (an errno, else the
	// error's text) is met while writes fail, with the lines lost so far,
	// and a warning once a write succeeds again, with how many were lost
	// meanwhile. nil means nothing is logged (Flush and Close still return
	// the errors, and Dropped counts the lines).
	Log *slog.Logger
	// OnDrop, when set, is called after every failed write with the
	// number of lines it lost and the error, under the Writer's write
	// lock: it must be quick (a child adds them to the master's shared
	// counters).
	OnDrop func(lines int, err error)
}

// Writer batches whole lines and writes each batch to the underlying writer
// with a single Write call, so that several processes appending to one
// O_APPEND file never interleave parts of lines: on a local file system
// Linux makes each write(2) to an O_APPEND file atomic with respect to the
// others. A Writer is safe for concurrent use; lines added while a batch is
// being written go into the next batch without waiting for the write.
//
// A Writer never closes the underlying writer: the file usually is a
// descriptor the process inherited and shares, and its owner closes it
// after [Writer.Close].
type Writer struct {
	out      io.Writer
	interval time.Duration
	size     int

	// wmu serialises writes to out, so batches reach out in order, and
	// guards spare, err and the loss report. Lock order: wmu, then mu.
	wmu   sync.Mutex
	spare []byte // the buffer not in use, swapped in by flush
	err   error  // first error of a background write since the last Flush
	loss  lossReport
	log   *slog.Logger
	drop  func(lines int, err error)

	mu     sync.Mutex
	buf    []byte // the batch being filled: whole lines only
	timer  *time.Timer
	armed  bool // timer is pending
	closed bool
}

// NewWriter returns a Writer that batches lines to w as opts says. The
// caller must Close it to write the last batch.
func NewWriter(w io.Writer, opts WriterOptions) *Writer {
	interval := opts.FlushInterval
	if interval == 0 {
		interval = DefaultFlushInterval
	}
	size := opts.BufferSize
	if size <= 0 {
		size = DefaultBufferSize
	}
	return &Writer{
		out:      w,
		interval: interval,
		size:     size,
		buf:      make([]byte, 0, size),
		spare:    make([]byte, 0, size),
		log:      opts.Log,
		drop:     opts.OnDrop,
	}
}

// Dropped returns how many lines failed writes have lost since the Writer
// was made.
func (w *Writer) Dropped() uint64 {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	return w.loss.total
}

// maxCauses bounds the causes of one spell of failures a Writer tells
// apart: past that many, further new ones are counted but not logged.
const maxCauses = 16

// lossReport is what a Writer knows of lines lost to failed writes.
type lossReport struct {
	total  uint64          // lines lost since the Writer was made
	spell  uint64          // lines lost since writes began to fail; 0 while they succeed
	causes map[string]bool // causes logged in this spell of failures
}

// wrote accounts for a write of b to out that wrote n bytes and returned
// err: the lines it lost, logged and counted as WriterOptions says. wmu is
// held.
func (w *Writer) wrote(b []byte, n int, err error) {
	if err == nil {
		if w.loss.spell > 0 && w.log != nil {
			w.log.Warn("access log writable again", "lines_lost", w.loss.spell)
		}
		w.loss.spell, w.loss.causes = 0, nil
		return
	}
	// The lines whose end was not written are lost, a torn one included.
	lost := bytes.Count(b[min(max(n, 0), len(b)):], []byte{'\n'})
	w.loss.total += uint64(lost)
	w.loss.spell += uint64(lost)
	if w.drop != nil {
		w.drop(lost, err)
	}
	cause := err.Error()
	var errno syscall.Errno
	if errors.As(err, &errno) {
		cause = "errno " + strconv.Itoa(int(errno))
	}
	if w.loss.causes[cause] || len(w.loss.causes) >= maxCauses {
		return
	}
	if w.loss.causes == nil {
		w.loss.causes = map[string]bool{}
	}
	w.loss.causes[cause] = true
	if w.log != nil {
		w.log.Error("access log write failed; its lines are dropped until writes succeed again", "err", err, "lines_lost", w.loss.spell)
	}
}

// Write adds p to the current batch. p holds one or more whole lines; if it
// does not end in a newline, one is added. Write copies p, so the caller may
// reuse it at once. Write returns ErrClosed after Close, and the error of the
// write only when p, larger than the buffer, is written at once; errors of
// batch writes are returned by the next Flush or Close.
func (w *Writer) Write(p []byte) (int, error) {
	n := len(p)
	if n == 0 {
		return 0, nil
	}
	addNewline := p[n-1] != '\n'
	need := n
	if addNewline {
		need++
	}

	w.mu.Lock()
	for {
		if w.closed {
			w.mu.Unlock()
			return 0, ErrClosed
		}
		if len(w.buf)+need <= w.size {
			break
		}
		if len(w.buf) == 0 {
			w.mu.Unlock()
			if err := w.writeAlone(p, addNewline); err != nil {
				return 0, err
			}
			return n, nil
		}
		w.mu.Unlock()
		w.flushBackground()
		w.mu.Lock()
	}
	w.buf = append(w.buf, p...)
	if addNewline {
		w.buf = append(w.buf, '\n')
	}
	if !w.armed && w.interval > 0 {
		w.armed = true
		if w.timer == nil {
			w.timer = time.AfterFunc(w.interval, w.onTimer)
		} else {
			w.timer.Reset(w.interval)
		}
	}
	w.mu.Unlock()
	return n, nil
}

// Flush writes the current batch, if any, with one Write call. It returns
// that write's error or, failing that, the first error of a batch written in
// the background since the last Flush.
func (w *Writer) Flush() error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	err := w.flushLocked()
	if err == nil {
		err = w.err
	}
	w.err = nil
	return err
}

// Close stops the flush timer and flushes the last batch, returning what
// Flush returns. It does not close the underlying writer; once Close has
// returned, the Writer never writes to it again, so its owner may close it.
// Write returns ErrClosed after Close. Close is idempotent.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
	// A timer callback that is already running waits for wmu and then finds
	// the batch empty.
	return w.Flush()
}

// onTimer writes the batch when the flush interval has passed.
func (w *Writer) onTimer() {
	w.mu.Lock()
	w.armed = false
	closed := w.closed
	w.mu.Unlock()
	if !closed {
		w.flushBackground()
	}
}

// flushBackground flushes and keeps the error for the next Flush.
func (w *Writer) flushBackground() {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if err := w.flushLocked(); err != nil && w.err == nil {
		w.err = err
	}
}

// flushLocked swaps the batch for the spare buffer and writes it; wmu is
// held, mu is not. A batch whose write fails is dropped.
func (w *Writer) flushLocked() error {
	w.mu.Lock()
	b := w.buf
	if len(b) == 0 {
		w.mu.Unlock()
		return nil
	}
	w.buf = w.spare
	w.mu.Unlock()

	n, err := w.out.Write(b)
	w.wrote(b, n, err)
	w.spare = b[:0]
	return err
}

// writeAlone writes a line larger than the buffer with its own Write call,
// after any batch being written.
func (w *Writer) writeAlone(p []byte, addNewline bool) error {
	if addNewline {
		p = append(p[:len(p):len(p)], '\n')
	}
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.mu.Lock()
	closed := w.closed // Close may have flushed while we waited for wmu
	w.mu.Unlock()
	if closed {
		return ErrClosed
	}
	n, err := w.out.Write(p)
	w.wrote(p, n, err)
	return err
}
