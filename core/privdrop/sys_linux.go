package privdrop

import (
	"bytes"
	"os"

	"golang.org/x/sys/unix"
)

// protectedSymlinks reports whether the fs.protected_symlinks sysctl is on.
// When it cannot be read it reports false, the kernel's own default.
func protectedSymlinks() bool {
	b, err := os.ReadFile("/proc/sys/fs/protected_symlinks")
	return err == nil && string(bytes.TrimSpace(b)) != "0"
}

// noexecMount reports whether path is on a file system mounted noexec.
func noexecMount(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Flags&unix.ST_NOEXEC != 0
}

// hasACL reports whether path (not a symlink) has a POSIX access ACL.
func hasACL(path string) bool {
	n, err := unix.Lgetxattr(path, "system.posix_acl_access", nil)
	return err == nil && n > 0
}
