//go:build linux && !mips && !mipsle && !mips64 && !mips64le

package static

import (
	"syscall"
	"unsafe"
)

// sysOpenat2 is openat2's system call number, the same on every Linux
// architecture but MIPS (which this file leaves out).
const sysOpenat2 = 437

// openHow is the kernel's struct open_how.
type openHow struct {
	flags   uint64
	mode    uint64
	resolve uint64
}

// resolveNoSymlinks is RESOLVE_NO_SYMLINKS: fail with ELOOP rather than
// follow a symlink anywhere in the path.
const resolveNoSymlinks = 0x04

// openNoSymlinks opens the NUL-terminated path name with flags, failing with
// ELOOP if any component of name is a symlink, and with ENOSYS where openat2
// (Linux 5.6) is missing.
func openNoSymlinks(name []byte, flags int) (int, error) {
	how := openHow{flags: uint64(flags), resolve: resolveNoSymlinks}
	dirfd := atFDCWD
	for {
		fd, _, errno := syscall.Syscall6(sysOpenat2, uintptr(dirfd),
			uintptr(unsafe.Pointer(&name[0])), uintptr(unsafe.Pointer(&how)), unsafe.Sizeof(how), 0, 0)
		switch errno {
		case 0:
			return int(fd), nil
		case syscall.EINTR:
			continue
		}
		return -1, errno
	}
}

// atFDCWD is AT_FDCWD: a relative name is relative to the working
// directory (and name is always absolute here).
const atFDCWD = -0x64
