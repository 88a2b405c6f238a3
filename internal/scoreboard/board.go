package scoreboard

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Segment layout, version 4 (version 1 had no connection count in a
// ProcSlot, version 2 no health word and heartbeat in the header and no
// client address in a WorkerSlot, version 3 no connection counts by state
// in a 64-byte ProcSlot). Every record starts on a 64-byte boundary and
// every field is naturally aligned, so each one can be accessed with
// sync/atomic straight in the mapping:
//
//	offset 0                       header (64 bytes)
//	offset 64                      procs x ProcSlot (128 bytes each)
//	offset 64 + procs*128          procs x threads x WorkerSlot (192 bytes
//	                               each), proc-major: Worker(i, j) is record
//	                               i*threads + j
const (
	// magic spells "phasedSB" when read as a big-endian number.
	magic = 0x7068617365645342
	// layoutVersion changes whenever the header or a slot record changes.
	layoutVersion = 4

	headerSize = 64
	procSize   = 128
	workerSize = 192

	// lineSize is the fixed size of the request-line field.
	lineSize  = 64
	lineWords = lineSize / 8

	// maxSegment bounds the segment Create will make (1 GiB, about eight
	// million worker slots): a guard against a runaway geometry, far above
	// any sane server_limit x threads_per_child.
	maxSegment = 1 << 30
)

// header is the start of every segment. Geometry fields are written once by
// Create before the segment is shared; generation may change later, health
// and heartbeat are the master's word to the generation's children (see
// SetStopping and Beat).
type header struct {
	magic      atomic.Uint64
	version    atomic.Uint32
	headerSize atomic.Uint32
	procs      atomic.Uint32
	threads    atomic.Uint32
	procSize   atomic.Uint32
	workerSize atomic.Uint32
	generation atomic.Int64
	health     atomic.Uint32 // healthStopping
	_          uint32
	heartbeat  atomic.Int64 // unix nanoseconds of the master's last Beat; 0 = never
	_          [8]byte
}

// The bits of header.health.
const healthStopping = 1

// Compile-time checks that the records have the sizes the layout promises.
var (
	_ [headerSize - unsafe.Sizeof(header{})]byte
	_ [unsafe.Sizeof(header{}) - headerSize]byte
	_ [procSize - unsafe.Sizeof(ProcSlot{})]byte
	_ [unsafe.Sizeof(ProcSlot{}) - procSize]byte
	_ [workerSize - unsafe.Sizeof(WorkerSlot{})]byte
	_ [unsafe.Sizeof(WorkerSlot{}) - workerSize]byte
)

// ErrInvalid is returned, wrapped with the details, by Open when the file is
// not a scoreboard segment this package can use: wrong magic, a different
// layout version (a child built against another SDK), an impossible geometry
// or a size that does not match it. Match it with errors.Is.
var ErrInvalid = errors.New("invalid scoreboard segment")

// Board is one mapped scoreboard segment: a header, one ProcSlot per child
// process and ThreadsPerProc WorkerSlots per process.
//
// The master makes a Board with Create, one per generation of children, and
// passes File to each child it spawns; a child maps it with Open. Both ends
// get the same memory. A Board's methods are safe for concurrent use until
// Close; the slot pointers it hands out are valid until Close too.
type Board struct {
	f       *os.File
	mem     []byte
	procs   int
	threads int
	hdr     *header
	unmap   bool // mem came from mmap (false only for tests' heap boards)

	closeOnce sync.Once
	closeErr  error
}

// segmentSize returns the size of a segment for the geometry, or an error if
// the geometry is impossible.
func segmentSize(procs, threads int) (int, error) {
	if procs <= 0 || threads <= 0 {
		return 0, fmt.Errorf("geometry %d procs x %d threads: both must be positive", procs, threads)
	}
	if procs > maxSegment/procSize || threads > maxSegment/workerSize ||
		procs > maxSegment/(threads*workerSize+procSize) {
		return 0, fmt.Errorf("geometry %d procs x %d threads: segment would exceed %d bytes", procs, threads, maxSegment)
	}
	return headerSize + procs*procSize + procs*threads*workerSize, nil
}

// Create makes a new, zeroed scoreboard segment for procs processes of
// threadsPerProc worker slots each (a prefork child has one) and maps it
// read-write and shared. name labels the segment in /proc/<pid>/fd and
// /proc/<pid>/maps (memfd_create's name, at most 249 bytes).
//
// The segment is an anonymous memory file (memfd): it has no path, needs no
// cleanup, and lives until the last process holding its descriptor or a
// mapping of it lets go. Its descriptor is close-on-exec; pass File to a
// child through exec.Cmd.ExtraFiles, which duplicates it into the child. Its
// size is sealed, so no child can shrink it under the master's mapping.
//
// Every slot starts Dead with zero counters, and the board's generation is 0
// until SetGeneration.
func Create(name string, procs, threadsPerProc int) (*Board, error) {
	size, err := segmentSize(procs, threadsPerProc)
	if err != nil {
		return nil, fmt.Errorf("creating scoreboard: %w", err)
	}
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("creating scoreboard: memfd_create %q: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), "scoreboard:"+name)
	fail := func(what string, err error) (*Board, error) {
		f.Close()
		return nil, fmt.Errorf("creating scoreboard: %s: %w", what, err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		return fail("ftruncate", err)
	}
	// Sealing is a safeguard, not a requirement: a file system without seal
	// support still gives a working board.
	_, _ = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL)
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail("mmap", err)
	}
	format(mem, procs, threadsPerProc)
	b, err := attach(mem)
	if err != nil { // cannot happen: format just wrote a valid header
		unix.Munmap(mem)
		return fail("validating", err)
	}
	b.f, b.unmap = f, true
	return b, nil
}

// format writes a fresh header into mem, which must be zeroed and exactly
// segmentSize(procs, threads) long.
func format(mem []byte, procs, threads int) {
	h := (*header)(unsafe.Pointer(&mem[0]))
	h.version.Store(layoutVersion)
	h.headerSize.Store(headerSize)
	h.procs.Store(uint32(procs))
	h.threads.Store(uint32(threads))
	h.procSize.Store(procSize)
	h.workerSize.Store(workerSize)
	h.magic.Store(magic) // last: a reader that sees the magic sees the rest
}

// attach validates the header in mem and returns a Board over it. It does
// not set f or unmap.
func attach(mem []byte) (*Board, error) {
	if len(mem) < headerSize {
		return nil, fmt.Errorf("segment is %d bytes, smaller than the %d-byte header: %w", len(mem), headerSize, ErrInvalid)
	}
	h := (*header)(unsafe.Pointer(&mem[0]))
	if m := h.magic.Load(); m != magic {
		return nil, fmt.Errorf("bad magic %#016x, want %#016x (not a phased scoreboard): %w", m, uint64(magic), ErrInvalid)
	}
	if v := h.version.Load(); v != layoutVersion {
		return nil, fmt.Errorf("layout version %d, this sdk reads version %d (master and child built against different phased sdks?): %w", v, layoutVersion, ErrInvalid)
	}
	if hs, ps, ws := h.headerSize.Load(), h.procSize.Load(), h.workerSize.Load(); hs != headerSize || ps != procSize || ws != workerSize {
		return nil, fmt.Errorf("record sizes header=%d proc=%d worker=%d, want %d/%d/%d: %w", hs, ps, ws, headerSize, procSize, workerSize, ErrInvalid)
	}
	procs, threads := int(h.procs.Load()), int(h.threads.Load())
	want, err := segmentSize(procs, threads)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrInvalid)
	}
	if len(mem) != want {
		return nil, fmt.Errorf("segment is %d bytes, but %d procs x %d threads need %d: %w", len(mem), procs, threads, want, ErrInvalid)
	}
	return &Board{mem: mem, procs: procs, threads: threads, hdr: h}, nil
}

// Open maps a scoreboard segment that Create made, typically in a child from
// the descriptor it inherited:
//
//	b, err := scoreboard.Open(os.NewFile(3, "scoreboard"))
//
// It checks the magic number, the layout version and that the file's size
// matches the geometry in the header, and returns an error wrapping
// ErrInvalid if any check fails. On success the Board owns f and Close closes
// it; on failure f is left open and still belongs to the caller.
func Open(f *os.File) (*Board, error) {
	if f == nil {
		return nil, errors.New("opening scoreboard: nil file")
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("opening scoreboard %s: %w", f.Name(), err)
	}
	var mem []byte
	var opErr error
	err = rc.Control(func(fd uintptr) {
		var st unix.Stat_t
		if err := unix.Fstat(int(fd), &st); err != nil {
			opErr = fmt.Errorf("fstat: %w", err)
			return
		}
		if st.Size < headerSize {
			opErr = fmt.Errorf("segment is %d bytes, smaller than the %d-byte header: %w", st.Size, headerSize, ErrInvalid)
			return
		}
		if st.Size > maxSegment {
			opErr = fmt.Errorf("segment is %d bytes, larger than any scoreboard (%d): %w", st.Size, maxSegment, ErrInvalid)
			return
		}
		mem, opErr = unix.Mmap(int(fd), 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if opErr != nil {
			opErr = fmt.Errorf("mmap: %w", opErr)
		}
	})
	if err == nil {
		err = opErr
	}
	if err != nil {
		return nil, fmt.Errorf("opening scoreboard %s: %w", f.Name(), err)
	}
	b, err := attach(mem)
	if err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("opening scoreboard %s: %w", f.Name(), err)
	}
	b.f, b.unmap = f, true
	return b, nil
}

// File returns the segment's file, to hand to a child through
// exec.Cmd.ExtraFiles. It stays owned by the Board: do not close it.
func (b *Board) File() *os.File { return b.f }

// Procs returns the number of process slots.
func (b *Board) Procs() int { return b.procs }

// ThreadsPerProc returns the number of worker slots per process.
func (b *Board) ThreadsPerProc() int { return b.threads }

// Generation returns the board's generation, as set by SetGeneration.
func (b *Board) Generation() int { return int(b.hdr.generation.Load()) }

// SetGeneration records the generation of children this board serves. The
// master sets it once after Create; Summary counts a worker as idle only
// when its process's generation equals it, as mod_status does.
func (b *Board) SetGeneration(g int) { b.hdr.generation.Store(int64(g)) }

// SetStopping records that the master is stopping (a graceful stop began,
// or a stop): from then on the generation's children answer their
// readiness probe with 503, so load balancers send them nothing new while
// they still serve. Only the master calls it; it cannot be undone.
func (b *Board) SetStopping() { b.hdr.health.Or(healthStopping) }

// Stopping reports whether SetStopping was called. It is one atomic load:
// children read it on every readiness probe.
func (b *Board) Stopping() bool { return b.hdr.health.Load()&healthStopping != 0 }

// Beat records that the master's event loop ran at now. The master beats
// every board it owns a few times a second, and children answer their
// liveness probe from how long ago the last beat was (Heartbeat).
func (b *Board) Beat(now time.Time) { b.hdr.heartbeat.Store(now.UnixNano()) }

// Heartbeat returns when the master last called Beat; the zero Time if it
// never did.
func (b *Board) Heartbeat() time.Time { return unixTime(b.hdr.heartbeat.Load()) }

// Proc returns the record of process slot i (0 <= i < Procs). It panics if i
// is out of range.
func (b *Board) Proc(i int) *ProcSlot {
	if uint(i) >= uint(b.procs) {
		panic(fmt.Sprintf("scoreboard: proc %d out of range [0,%d)", i, b.procs))
	}
	return (*ProcSlot)(unsafe.Pointer(&b.mem[headerSize+i*procSize]))
}

// Worker returns the record of worker slot j of process slot i
// (0 <= i < Procs, 0 <= j < ThreadsPerProc). It panics if either is out of
// range.
func (b *Board) Worker(i, j int) *WorkerSlot {
	if uint(i) >= uint(b.procs) || uint(j) >= uint(b.threads) {
		panic(fmt.Sprintf("scoreboard: worker (%d,%d) out of range [0,%d)x[0,%d)", i, j, b.procs, b.threads))
	}
	off := headerSize + b.procs*procSize + (i*b.threads+j)*workerSize
	return (*WorkerSlot)(unsafe.Pointer(&b.mem[off]))
}

// ClearProc marks process slot i and all its worker slots Dead, clears its
// pid, start time, app pid, quiescing and full flags, accept wait and
// connection counts, and repairs a request-line update the
// process may have died in the middle of. The master calls it after reaping
// the child that held the slot, before reusing it. Counters and the last
// request line are kept: like Apache's, they belong to the slot.
func (b *Board) ClearProc(i int) {
	p := b.Proc(i)
	p.pid.Store(0)
	p.startTime.Store(0)
	p.quiescing.Store(0)
	p.full.Store(0)
	p.appPID.Store(0)
	p.acceptWait.Store(0)
	p.acceptBeat.Store(0)
	p.conns.Store(0)
	p.connReading.Store(0)
	p.connWriting.Store(0)
	p.connKeepAlive.Store(0)
	p.connClosing.Store(0)
	p.tunnels.Store(0)
	p.state.Store(uint32(Dead))
	for j := 0; j < b.threads; j++ {
		w := b.Worker(i, j)
		w.state.Store(uint32(Dead))
		if s := w.seq.Load(); s&1 != 0 {
			w.seq.Store(s + 1)
		}
	}
}

// Close unmaps the segment and closes its file. Neither the Board nor any
// slot pointer obtained from it may be used afterwards, from any goroutine:
// the memory is gone, and touching it faults. Other processes that mapped
// the segment are unaffected. Calling Close again returns the first result.
func (b *Board) Close() error {
	b.closeOnce.Do(func() {
		var errs []error
		if b.unmap && b.mem != nil {
			if err := unix.Munmap(b.mem); err != nil {
				errs = append(errs, fmt.Errorf("munmap: %w", err))
			}
		}
		if b.f != nil {
			if err := b.f.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			b.closeErr = fmt.Errorf("closing scoreboard: %w", err)
		}
	})
	return b.closeErr
}
