//go:build !linux || mips || mipsle || mips64 || mips64le

package static

import "syscall"

// openNoSymlinks always fails with ENOSYS where openat2 is not available,
// which sends every request down the path that resolves symlinks.
func openNoSymlinks([]byte, int) (int, error) { return -1, syscall.ENOSYS }
