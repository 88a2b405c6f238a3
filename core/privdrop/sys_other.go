//go:build !linux

package privdrop

// protectedSymlinks reports false: fs.protected_symlinks is Linux's.
func protectedSymlinks() bool { return false }

// noexecMount reports false: noexec mounts are only detected on Linux.
func noexecMount(string) bool { return false }

// hasACL reports false: ACLs are only detected on Linux.
func hasACL(string) bool { return false }
