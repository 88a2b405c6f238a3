package privdrop

import (
	"fmt"
	"io/fs"
	"os"
	osuser "os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// maxSymlinks is the kernel's limit on symlinks followed in one lookup
// (MAXSYMLINKS).
const maxSymlinks = 40

// Permission bits, as in the rwx triplets.
const (
	permRead   = 4
	permSearch = 1 // search on a directory, execute on a file
)

// AccessError reports that an Identity cannot reach or use a path. It is
// returned by CheckReadable and CheckExecutable.
type AccessError struct {
	// What is the label the check was called with, such as
	// "document_root".
	What string
	// Path is the path the check was called with.
	Path string
	// Identity is who was checked.
	Identity *Identity
	// Need is what is missing: "search", "read", "execute" or "follow".
	Need string
	// Component is the file, directory or symlink that denies it, with the
	// symlinks before it resolved.
	Component string
	// Mode is Component's mode (a symlink's own mode for "follow").
	Mode fs.FileMode
	// Owner and Group are Component's owner and group, names when they
	// have entries, else numbers.
	Owner, Group string
	// Reason says why when the mode bits alone do not, such as a noexec
	// mount; "" when they do.
	Reason string
}

// Error returns a message naming the path and what is missing, such as
// `document_root /srv/www: user nobody (uid 65534) cannot search /srv (mode
// drwx------ owned by root:root)`.
func (e *AccessError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: user %s (uid %d) cannot %s %s (mode %s owned by %s:%s)",
		e.What, e.Path, e.Identity.User, e.Identity.UID, e.Need, e.Component, e.Mode, e.Owner, e.Group)
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	return b.String()
}

// CheckReadable returns an error unless id can read path, a file, or read
// and search it, a directory. Every directory on the way, including those
// reached through symlinks, must be searchable by id. what labels the path
// in the error, as the configuration key it came from ("document_root").
//
// The decision uses the mode bits, owner and group of each component, with
// id's GID as its only group; POSIX ACLs are not considered (see the package
// documentation). A relative path is taken against the master's working
// directory. A path that does not exist returns an error wrapping
// fs.ErrNotExist; one that id cannot reach or read returns an *AccessError.
// A nil id (children run as the master) checks nothing and returns nil.
func (id *Identity) CheckReadable(what, path string) error {
	if id == nil {
		return nil
	}
	return newChecker().check(id, what, path, false)
}

// CheckExecutable is CheckReadable for a program: every directory on the way
// must be searchable, and the file must be a non-directory that id can
// execute, on a file system not mounted noexec. Read permission on the file
// is not required; a script (#!) also needs it, for its interpreter, and
// that is not checked. A nil id checks nothing and returns nil.
func (id *Identity) CheckExecutable(what, path string) error {
	if id == nil {
		return nil
	}
	return newChecker().check(id, what, path, true)
}

// checker holds what the check reads from the system once per call.
type checker struct {
	// protectedSymlinks is the fs.protected_symlinks sysctl.
	protectedSymlinks bool
	// noexec reports whether path is on a file system mounted noexec.
	noexec func(path string) bool
	// hasACL reports whether path has a POSIX access ACL.
	hasACL func(path string) bool
}

func newChecker() checker {
	return checker{protectedSymlinks: protectedSymlinks(), noexec: noexecMount, hasACL: hasACL}
}

// check walks path as id and then checks the last component for read (and
// search, for a directory) or, when exec, for execute.
func (c checker) check(id *Identity, what, path string, exec bool) error {
	target, info, err := c.walk(id, what, path)
	if err != nil {
		return err
	}
	if exec {
		if info.IsDir() {
			return fmt.Errorf("%s %s: %s is a directory, not a program", what, path, target)
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%s %s: %s is not a regular file", what, path, target)
		}
		if !may(id, info, permSearch) {
			return c.denied(id, what, path, "execute", target, info)
		}
		if c.noexec(target) {
			e := c.denied(id, what, path, "execute", target, info)
			e.Reason = "its file system is mounted noexec"
			return e
		}
		return nil
	}
	if !may(id, info, permRead) {
		return c.denied(id, what, path, "read", target, info)
	}
	if info.IsDir() && !may(id, info, permSearch) {
		return c.denied(id, what, path, "search", target, info)
	}
	return nil
}

// walk resolves path one component at a time, checking that id can search
// every directory it passes through and follow every symlink it meets, and
// returns the resolved last component and its FileInfo.
func (c checker) walk(id *Identity, what, path string) (string, fs.FileInfo, error) {
	// Not filepath.Abs: it cleans "dir/../x" to "x" lexically, where the
	// kernel looks ".." up in dir (needing search on it, and reaching the
	// parent of a symlink's target rather than of the link).
	abs := path
	if !filepath.IsAbs(path) {
		wd, err := os.Getwd()
		if err != nil {
			return "", nil, fmt.Errorf("%s %s: %w", what, path, err)
		}
		abs = wd + "/" + path
	}
	cur := "/"
	curInfo, err := os.Stat(cur)
	if err != nil {
		return "", nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	rest := components(abs)
	links := 0
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		if name == "." {
			continue
		}
		// Looking up any name in cur, ".." included, needs search on cur.
		if !may(id, curInfo, permSearch) {
			return "", nil, c.denied(id, what, path, "search", cur, curInfo)
		}
		if name == ".." {
			cur = filepath.Dir(cur)
			if curInfo, err = os.Lstat(cur); err != nil {
				return "", nil, fmt.Errorf("%s %s: %w", what, path, err)
			}
			continue
		}
		next := filepath.Join(cur, name)
		info, err := os.Lstat(next)
		if err != nil {
			return "", nil, fmt.Errorf("%s %s: %w", what, path, err)
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			if links++; links > maxSymlinks {
				return "", nil, fmt.Errorf("%s %s: %w", what, path,
					&fs.PathError{Op: "resolve", Path: abs, Err: syscall.ELOOP})
			}
			if c.protectedSymlinks && !mayFollow(id, curInfo, info) {
				e := c.denied(id, what, path, "follow", next, info)
				e.Reason = "fs.protected_symlinks: the link is in a sticky world-writable directory" +
					" and owned by neither the user nor the directory's owner"
				return "", nil, e
			}
			link, err := os.Readlink(next)
			if err != nil {
				return "", nil, fmt.Errorf("%s %s: %w", what, path, err)
			}
			if link == "" {
				return "", nil, fmt.Errorf("%s %s: %w", what, path,
					&fs.PathError{Op: "readlink", Path: next, Err: syscall.ENOENT})
			}
			if filepath.IsAbs(link) {
				cur = "/"
				if curInfo, err = os.Stat(cur); err != nil {
					return "", nil, fmt.Errorf("%s %s: %w", what, path, err)
				}
			}
			rest = append(components(link), rest...)
			continue
		}
		if len(rest) > 0 && !info.IsDir() {
			return "", nil, fmt.Errorf("%s %s: %w", what, path,
				&fs.PathError{Op: "lookup", Path: next, Err: syscall.ENOTDIR})
		}
		cur, curInfo = next, info
	}
	return cur, curInfo, nil
}

// components splits a path into its non-empty names.
func components(path string) []string {
	var out []string
	for _, name := range strings.Split(path, "/") {
		if name != "" {
			out = append(out, name)
		}
	}
	return out
}

// may reports whether id has every bit of want (permRead, permSearch) on
// info, by its mode bits: the owner triplet if id owns it, else the group
// triplet if its group is id's group, else the other triplet. uid 0 may
// read and search anything, and execute a non-directory with any x bit.
func may(id *Identity, info fs.FileInfo, want uint32) bool {
	uid, gid := owner(info)
	perm := uint32(info.Mode().Perm())
	if id.UID == 0 {
		if want&permSearch != 0 && !info.IsDir() {
			return perm&0o111 != 0
		}
		return true
	}
	var bits uint32
	switch {
	case uid == id.UID:
		bits = perm >> 6
	case gid == id.GID:
		bits = perm >> 3
	default:
		bits = perm
	}
	return bits&want == want
}

// mayFollow reports whether fs.protected_symlinks lets id follow the
// symlink link found in the directory dir: it does unless dir is sticky and
// world-writable and link is owned by neither id nor dir's owner (fs/namei.c
// may_follow_link; it applies to root too).
func mayFollow(id *Identity, dir, link fs.FileInfo) bool {
	linkUID, _ := owner(link)
	dirUID, _ := owner(dir)
	switch {
	case linkUID == id.UID:
		return true
	case dir.Mode()&fs.ModeSticky == 0 || dir.Mode().Perm()&0o002 == 0:
		return true
	default:
		return linkUID == dirUID
	}
}

// owner returns info's owner and group.
func owner(info fs.FileInfo) (uid, gid uint32) {
	st := info.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid
}

// denied builds the AccessError for component, whose FileInfo is info.
func (c checker) denied(id *Identity, what, path, need, component string, info fs.FileInfo) *AccessError {
	uid, gid := owner(info)
	e := &AccessError{
		What: what, Path: path, Identity: id, Need: need,
		Component: component, Mode: info.Mode(),
		Owner: userName(uid), Group: groupName(gid),
	}
	if need != "follow" && c.hasACL(component) {
		e.Reason = "it has a POSIX ACL, which this check does not consider"
	}
	return e
}

// userName returns uid's name, or its number when it has no entry.
func userName(uid uint32) string {
	s := strconv.FormatUint(uint64(uid), 10)
	if u, err := osuser.LookupId(s); err == nil {
		return u.Username
	}
	return s
}

// groupName returns gid's name, or its number when it has no entry.
func groupName(gid uint32) string {
	s := strconv.FormatUint(uint64(gid), 10)
	if g, err := osuser.LookupGroupId(s); err == nil {
		return g.Name
	}
	return s
}
