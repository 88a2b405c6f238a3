// Package tickets keeps the TLS session ticket keys every child of a master
// shares, so that a client resumes its TLS session on whichever child (of
// whichever generation) its next connection reaches: a per-process server
// makes its own keys and resumption fails across processes.
//
// The master makes the keys (Create), rotates them on a schedule (Rotate:
// a new key encrypts, the previous ones still decrypt), and hands the
// segment to every child (File). The segment is shared memory that only
// the master can write (sealed against new writable mappings once the
// master mapped it); a child reads the current keys (Open, Keys) and gives
// them to its tls.Config, again whenever they change (Watch).
package tickets

import (
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Keep is how many keys the segment holds: the newest encrypts, all
// decrypt.
const Keep = 4

const magic = 0x7068617365645453 // "phasedTS"

// block is the segment's layout: a sequence number that is odd while the
// master writes (a seqlock), and the keys, newest first.
type block struct {
	magic atomic.Uint64
	seq   atomic.Uint64
	n     atomic.Uint64
	keys  [Keep][32]byte
}

// Keys is a ticket key segment.
type Keys struct {
	f   *os.File
	mem []byte
	b   *block
}

// Create makes a segment with one fresh key.
func Create() (*Keys, error) { return CreateWith(nil) }

// CreateWith makes a segment holding keys, newest first (at most Keep), or
// one fresh key when there are none: a master started by a binary upgrade
// goes on with its predecessor's keys.
func CreateWith(keys [][32]byte) (*Keys, error) {
	fd, err := unix.MemfdCreate("phased-tickets", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("ticket keys: %w", err)
	}
	size := int(unsafe.Sizeof(block{}))
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ticket keys: %w", err)
	}
	k, err := mapKeys(os.NewFile(uintptr(fd), "phased-tickets"), unix.PROT_READ|unix.PROT_WRITE)
	if err != nil {
		return nil, err
	}
	// The master's mapping is the only writable one there will be.
	_, _ = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_FUTURE_WRITE|unix.F_SEAL_SEAL)
	k.b.magic.Store(magic)
	if len(keys) > 0 {
		n := copy(k.b.keys[:], keys)
		k.b.n.Store(uint64(n))
		return k, nil
	}
	if err := k.Rotate(); err != nil {
		k.Close()
		return nil, err
	}
	return k, nil
}

// Open maps an inherited segment, read-only.
func Open(f *os.File) (*Keys, error) {
	k, err := mapKeys(f, unix.PROT_READ)
	if err != nil {
		return nil, err
	}
	if k.b.magic.Load() != magic {
		k.Close()
		return nil, errors.New("ticket keys: wrong magic")
	}
	return k, nil
}

func mapKeys(f *os.File, prot int) (*Keys, error) {
	size := int(unsafe.Sizeof(block{}))
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("ticket keys: %w", err)
	}
	if fi.Size() < int64(size) {
		return nil, fmt.Errorf("ticket keys: %d bytes, want %d", fi.Size(), size)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("ticket keys: mmap: %w", err)
	}
	return &Keys{f: f, mem: mem, b: (*block)(unsafe.Pointer(&mem[0]))}, nil
}

// File is the segment's file, to pass to children.
func (k *Keys) File() *os.File { return k.f }

// Rotate puts a fresh key first; the oldest beyond Keep is dropped. Only
// the master, which made the segment, may call it.
func (k *Keys) Rotate() error {
	var fresh [32]byte
	if _, err := rand.Read(fresh[:]); err != nil {
		return fmt.Errorf("ticket keys: %w", err)
	}
	k.b.seq.Add(1) // odd: being written
	copy(k.b.keys[1:], k.b.keys[:Keep-1])
	k.b.keys[0] = fresh
	k.b.n.Store(min(k.b.n.Load()+1, Keep))
	k.b.seq.Add(1)
	return nil
}

// Keys returns the current keys, newest first, and their version.
func (k *Keys) Keys() ([][32]byte, uint64) {
	for {
		s := k.b.seq.Load()
		if s&1 != 0 {
			continue
		}
		n := min(k.b.n.Load(), Keep)
		out := make([][32]byte, n)
		copy(out, k.b.keys[:n])
		if k.b.seq.Load() == s {
			return out, s
		}
	}
}

// Watch gives cfg the current keys, and again whenever they change (it
// looks every interval) until stop is closed.
func (k *Keys) Watch(cfg *tls.Config, interval time.Duration, stop <-chan struct{}) {
	keys, seq := k.Keys()
	cfg.SetSessionTicketKeys(keys)
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if _, s := k.Keys(); s != seq {
					keys, seq = k.Keys()
					cfg.SetSessionTicketKeys(keys)
				}
			}
		}
	}()
}

// Close unmaps the segment and closes its file.
func (k *Keys) Close() error {
	err := unix.Munmap(k.mem)
	if cerr := k.f.Close(); err == nil {
		err = cerr
	}
	return err
}
