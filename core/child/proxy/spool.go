package proxy

import (
	"errors"
	"io"
	"os"
	"sync"
)

// store holds a body: its first memMax bytes in memory, the rest in an
// unlinked temporary file, which goes with the store.
type store struct {
	dir    string
	memMax int64
	mem    []byte
	f      *os.File
	fsize  int64
}

// size is how many bytes the store holds.
func (s *store) size() int64 { return int64(len(s.mem)) + s.fsize }

// write appends p.
func (s *store) write(p []byte) error {
	if room := s.memMax - int64(len(s.mem)); room > 0 {
		n := min(room, int64(len(p)))
		s.mem = append(s.mem, p[:n]...)
		p = p[n:]
	}
	if len(p) == 0 {
		return nil
	}
	if s.f == nil {
		f, err := os.CreateTemp(s.dir, "body-")
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

// readAt reads what the store holds at off.
func (s *store) readAt(p []byte, off int64) (int, error) {
	if off < int64(len(s.mem)) {
		return copy(p, s.mem[off:]), nil
	}
	off -= int64(len(s.mem))
	if s.f == nil || off >= s.fsize {
		return 0, io.EOF
	}
	if max := s.fsize - off; int64(len(p)) > max {
		p = p[:max]
	}
	return s.f.ReadAt(p, off)
}

func (s *store) close() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	s.mem = nil
}

// bodyReader reads a store from the start: a request body, held whole
// before it goes to the app.
type bodyReader struct {
	st  *store
	off int64
}

func (r *bodyReader) Read(p []byte) (int, error) {
	n, err := r.st.readAt(p, r.off)
	r.off += int64(n)
	return n, err
}

func (r *bodyReader) Close() error {
	r.st.close()
	return nil
}

// errClosed is what a readAhead answers after Close.
var errClosed = errors.New("body closed")

// readAhead is a response body read from the app as fast as it sends it,
// into a store, while the client reads it at its own pace: the app is free
// once it has sent its response, however slow the client. Past the store's
// limit it stops reading ahead, and the rest flows at the client's pace.
type readAhead struct {
	up    io.ReadCloser
	limit int64 // how much the store may hold

	mu      sync.Mutex
	cond    *sync.Cond
	st      store
	off     int64  // the reader's position
	done    bool   // the app's body ended (err says how)
	err     error  // the app's error, io.EOF at a clean end
	full    bool   // the store is full: the rest is read from the app directly
	pending []byte // what the filler read beyond the limit
	closed  bool
}

func newReadAhead(up io.ReadCloser, st store, limit int64) *readAhead {
	r := &readAhead{up: up, limit: limit, st: st}
	r.cond = sync.NewCond(&r.mu)
	go r.fill()
	return r
}

// fill reads the app's body into the store until it ends or the store is
// full.
func (r *readAhead) fill() {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.up.Read(buf)
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return
		}
		if n > 0 {
			if r.st.size()+int64(n) > r.limit {
				r.pending, r.full = append([]byte(nil), buf[:n]...), true
				r.cond.Broadcast()
				r.mu.Unlock()
				return
			}
			if werr := r.st.write(buf[:n]); werr != nil && err == nil {
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

func (r *readAhead) Read(p []byte) (int, error) {
	r.mu.Lock()
	for !r.closed && r.off == r.st.size() && !r.done && !r.full {
		r.cond.Wait()
	}
	switch {
	case r.closed:
		r.mu.Unlock()
		return 0, errClosed
	case r.off < r.st.size():
		n, err := r.st.readAt(p, r.off)
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

func (r *readAhead) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.cond.Broadcast()
	r.st.close()
	r.mu.Unlock()
	return r.up.Close()
}
