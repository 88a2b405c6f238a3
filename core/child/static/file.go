package static

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// file is an open, read-only file descriptor with just what
// http.ServeContent and net's sendfile need: Read, Seek and SyscallConn.
//
// It exists because *os.File costs more than the request it serves: on
// Linux os.Open tries to register every regular file with the netpoller
// (a failing epoll_ctl per open), and ServeContent's two seeks to learn the
// size are two more system calls. file answers Seek from the size fstat
// reported, reads with pread at its own offset, and moves the kernel's
// offset only when it hands the descriptor to sendfile. Serving a small
// file is then open, fstat, pread and close.
//
// The mutex makes Close safe against the goroutine ServeContent starts for
// a multi-range response, which may still be reading when ServeContent has
// returned and the handler closes the file: once closed, the descriptor
// number (which the kernel may hand to another request) is never touched.
type file struct {
	mu    sync.Mutex
	fd    int       // -1 once closed or released
	size  int64     // size at fstat; Seek(0, io.SeekEnd) answers this
	mode  uint32    // st_mode & S_IFMT
	mtime time.Time // modification time at fstat
	dev   uint64    // device and inode at fstat: the file's identity
	ino   uint64
	off   int64 // offset of the next Read; -1 after sendfile
	koff  int64 // the kernel's file offset; -1 when unknown
}

// Assert what ServeContent and net's sendfile look for.
var (
	_ io.ReadSeeker = (*file)(nil)
	_ syscall.Conn  = (*file)(nil)
)

var errSeek = errors.New("seek to a negative offset")

// openFlags open a file to serve. O_NONBLOCK keeps a FIFO in the document
// root from blocking the open, and O_NOCTTY a terminal from becoming the
// child's; neither changes anything for regular files and directories.
const openFlags = syscall.O_RDONLY | syscall.O_CLOEXEC | syscall.O_NONBLOCK | syscall.O_NOCTTY

// openFile opens name read-only and fstats it. Errors are the bare errno,
// to spare an allocation on a 404.
func openFile(name string) (*file, error) {
	var fd int
	var err error
	for {
		fd, err = syscall.Open(name, openFlags, 0)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return newFile(fd)
}

// openFileNoSymlinks opens the NUL-terminated path name as openFile does,
// but fails with ELOOP if a component of name is a symlink, and with ENOSYS
// if the kernel cannot tell.
func openFileNoSymlinks(name []byte) (*file, error) {
	fd, err := openNoSymlinks(name, openFlags)
	if err != nil {
		return nil, err
	}
	return newFile(fd)
}

// newFile fstats the open descriptor fd and returns it as a file; if fstat
// fails, it closes fd.
func newFile(fd int) (*file, error) {
	f := &file{fd: fd}
	var err error
	var st syscall.Stat_t
	for {
		err = syscall.Fstat(fd, &st)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		syscall.Close(fd)
		return nil, err
	}
	f.size = st.Size
	f.mode = uint32(st.Mode) & syscall.S_IFMT
	f.mtime = mtime(&st)
	f.dev, f.ino = uint64(st.Dev), uint64(st.Ino)
	return f, nil
}

// isDir reports whether the file is a directory.
func (f *file) isDir() bool { return f.mode == syscall.S_IFDIR }

// isRegular reports whether the file is a regular file.
func (f *file) isRegular() bool { return f.mode == syscall.S_IFREG }

// Read reads from the file's offset with pread.
func (f *file) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fd < 0 {
		return 0, os.ErrClosed
	}
	if err := f.syncOffset(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := syscall.Pread(f.fd, p, f.off)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, io.EOF
		}
		f.off += int64(n)
		return n, nil
	}
}

// Seek sets the offset of the next Read without a system call; io.SeekEnd
// is relative to the size fstat reported when the file was opened.
func (f *file) Seek(offset int64, whence int) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fd < 0 {
		return 0, os.ErrClosed
	}
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		if err := f.syncOffset(); err != nil {
			return 0, err
		}
		offset += f.off
	case io.SeekEnd:
		offset += f.size
	default:
		return 0, syscall.EINVAL
	}
	if offset < 0 {
		return 0, errSeek
	}
	f.off = offset
	return offset, nil
}

// syncOffset recovers the read offset after sendfile moved the kernel's.
// f.mu must be held.
func (f *file) syncOffset() error {
	if f.off >= 0 {
		return nil
	}
	off, err := syscall.Seek(f.fd, 0, io.SeekCurrent)
	if err != nil {
		return err
	}
	f.off, f.koff = off, off
	return nil
}

// Close closes the descriptor; later calls do nothing.
func (f *file) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fd < 0 {
		return nil
	}
	err := syscall.Close(f.fd)
	f.fd = -1
	return err
}

// osFile hands the descriptor over to an *os.File named name, which the
// caller must close; f is closed.
func (f *file) osFile(name string) *os.File {
	f.mu.Lock()
	defer f.mu.Unlock()
	fd := f.fd
	f.fd = -1
	return os.NewFile(uintptr(fd), name)
}

// SyscallConn returns the raw descriptor for net's sendfile.
func (f *file) SyscallConn() (syscall.RawConn, error) { return (*rawFile)(f), nil }

// rawFile is the syscall.RawConn of a file.
type rawFile file

// Control calls fn with the descriptor.
func (r *rawFile) Control(fn func(fd uintptr)) error {
	f := (*file)(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fd < 0 {
		return os.ErrClosed
	}
	fn(uintptr(f.fd))
	return nil
}

// Read calls fn with the descriptor, its kernel offset moved to the read
// offset first: sendfile reads from there, and advances it.
func (r *rawFile) Read(fn func(fd uintptr) bool) error {
	f := (*file)(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fd < 0 {
		return os.ErrClosed
	}
	if err := f.syncOffset(); err != nil {
		return err
	}
	if f.koff != f.off {
		if _, err := syscall.Seek(f.fd, f.off, io.SeekStart); err != nil {
			return err
		}
	}
	for !fn(uintptr(f.fd)) {
	}
	f.off, f.koff = -1, -1
	return nil
}

// Write fails: the file is read-only.
func (r *rawFile) Write(func(fd uintptr) bool) error { return syscall.EBADF }
