// Package spool holds the bodies a phased child keeps between a client and
// its app server: a request body read whole before it goes to the app, a
// response read from the app as fast as it comes while the client reads
// it at its own pace (nginx's proxy and fastcgi buffering), in memory up
// to a size, then in an unlinked temporary file.
package spool

import (
	"errors"
	"io"
	"os"
	"sync"
)

// Store holds a body: its first MemMax bytes in memory, the rest in an
// unlinked temporary file in Dir, which goes with the store.
type Store struct {
	Dir    string
	MemMax int64
	// Mem is what the store holds in memory: a caller that knows a body's
	// length may read it straight into a Mem of that length.
	Mem   []byte
	f     *os.File
	fsize int64
}

// Size is how many bytes the store holds.
func (s *Store) Size() int64 { return int64(len(s.Mem)) + s.fsize }

// Write appends p.
func (s *Store) Write(p []byte) error {
	if room := s.MemMax - int64(len(s.Mem)); room > 0 {
		n := min(room, int64(len(p)))
		s.Mem = append(s.Mem, p[:n]...)
		p = p[n:]
	}
	if len(p) == 0 {
		return nil
	}
	if s.f == nil {
		f, err := os.CreateTemp(s.Dir, "body-")
		if err != nil {
			return err
		}
		os.Remove(f.Name()) // unlinked: it goes when it is closed, whatever happens
		s.f = f
	}
	n, err := s.f.WriteAt(p, s.fsize)
	s.fsize += int64(n)
	return err
}

// ReadAt reads what the store holds at off.
func (s *Store) ReadAt(p []byte, off int64) (int, error) {
	if off < int64(len(s.Mem)) {
		return copy(p, s.Mem[off:]), nil
	}
	off -= int64(len(s.Mem))
	if s.f == nil || off >= s.fsize {
		return 0, io.EOF
	}
	if max := s.fsize - off; int64(len(p)) > max {
		p = p[:max]
	}
	return s.f.ReadAt(p, off)
}

// Close lets go of what the store holds.
func (s *Store) Close() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	s.Mem = nil
}

// Fill writes what r reads into st, to its end.
func Fill(st *Store, r io.Reader) (int64, error) {
	buf := Buffers.Get()
	defer Buffers.Put(buf)
	var n int64
	for {
		m, err := r.Read(buf)
		if m > 0 {
			if werr := st.Write(buf[:m]); werr != nil {
				return n, werr
			}
			n += int64(m)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// Reader reads a store from the start, and closes it with itself: a body
// held whole before it goes on.
type Reader struct {
	st  *Store
	off int64
}

// NewReader returns a Reader of st.
func NewReader(st *Store) *Reader { return &Reader{st: st} }

func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.st.ReadAt(p, r.off)
	r.off += int64(n)
	return n, err
}

// Close closes the store.
func (r *Reader) Close() error {
	r.st.Close()
	return nil
}

// BufferPool lends the 32 KiB buffers bodies are copied through
// (httputil.BufferPool's methods), so that a request costs no buffer of
// its own.
type BufferPool struct{ p sync.Pool }

// Buffers is the child's pool.
var Buffers = &BufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}

// Get returns a 32 KiB buffer.
func (bp *BufferPool) Get() []byte { return *bp.p.Get().(*[]byte) }

// Put gives back a buffer Get returned.
func (bp *BufferPool) Put(b []byte) {
	if cap(b) == 32<<10 {
		b = b[:cap(b)]
		bp.p.Put(&b)
	}
}

// errClosed is what a readAhead answers after Close.
var errClosed = errors.New("body closed")

// ReadAhead is a response body read from the app as fast as it sends it,
// into a store, while the client reads it at its own pace: the app is free
// once it has sent its response, however slow the client. Past the store's
// limit it stops reading ahead, and the rest flows at the client's pace.
type ReadAhead struct {
	up    io.ReadCloser
	limit int64 // how much the store may hold

	mu      sync.Mutex
	cond    *sync.Cond
	st      Store
	off     int64  // the reader's position
	done    bool   // the app's body ended (err says how)
	err     error  // the app's error, io.EOF at a clean end
	full    bool   // the store is full: the rest is read from the app directly
	pending []byte // what the filler read beyond the limit
	closed  bool
}

// NewReadAhead starts reading up into st, up to limit bytes held (memory
// and file), and returns the reader of what comes. Close it.
func NewReadAhead(up io.ReadCloser, st Store, limit int64) *ReadAhead {
	r := &ReadAhead{up: up, limit: limit, st: st}
	r.cond = sync.NewCond(&r.mu)
	go r.fill()
	return r
}

// fill reads the app's body into the store until it ends or the store is
// full.
func (r *ReadAhead) fill() {
	buf := Buffers.Get()
	defer Buffers.Put(buf)
	for {
		n, err := r.up.Read(buf)
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return
		}
		if n > 0 {
			if r.st.Size()+int64(n) > r.limit {
				r.pending, r.full = append([]byte(nil), buf[:n]...), true
				r.cond.Broadcast()
				r.mu.Unlock()
				return
			}
			if werr := r.st.Write(buf[:n]); werr != nil && err == nil {
				err = werr
			}
		}
		if err != nil {
			r.done, r.err = true, err
			if err == io.EOF {
				r.up.Close() // read to the end: the connection goes back to the pool
			}
		}
		r.cond.Broadcast()
		r.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Buffered reports whether Read has bytes at hand, read ahead from the app
// and not yet read: when it has not, what was read so far is worth a
// flush (the app flushed, or is slow).
func (r *ReadAhead) Buffered() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.off < r.st.Size() || len(r.pending) > 0
}

func (r *ReadAhead) Read(p []byte) (int, error) {
	r.mu.Lock()
	for !r.closed && r.off == r.st.Size() && !r.done && !r.full {
		r.cond.Wait()
	}
	switch {
	case r.closed:
		r.mu.Unlock()
		return 0, errClosed
	case r.off < r.st.Size():
		n, err := r.st.ReadAt(p, r.off)
		r.off += int64(n)
		r.mu.Unlock()
		if err == io.EOF && n > 0 {
			err = nil
		}
		return n, err
	case r.full:
		if len(r.pending) > 0 {
			n := copy(p, r.pending)
			r.pending = r.pending[n:]
			r.mu.Unlock()
			return n, nil
		}
		r.mu.Unlock()
		return r.up.Read(p) // past the limit: at the client's pace
	default: // done, all read
		err := r.err
		r.mu.Unlock()
		return 0, err
	}
}

// Close stops reading ahead, lets go of what is held, and closes up.
func (r *ReadAhead) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.cond.Broadcast()
	r.st.Close()
	r.mu.Unlock()
	return r.up.Close()
}
