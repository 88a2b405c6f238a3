package gateway

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrNotFound is returned by Find for a URL path that names nothing inside
// the folder: missing, outside it through a symlink, or not a valid path.
var ErrNotFound = errors.New("not found")

// ErrForbidden is returned by Find when the file system refuses to look.
var ErrForbidden = errors.New("forbidden")

// Root is a folder that scripts are looked up in, resolved for one request.
type Root struct {
	// Dir is the folder as configured, made absolute.
	Dir string

	// Real is the folder with every symlink resolved.
	Real string

	// info is what OpenRoot found Real to be; nil for a Root made
	// otherwise.
	info fs.FileInfo
}

// OpenRoot resolves the folder dir, which must exist and be a directory.
func OpenRoot(dir string) (Root, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Root{}, fmt.Errorf("folder %q: %w", dir, err)
	}
	real, fi, err := Resolve(abs)
	if err != nil {
		return Root{}, fmt.Errorf("folder %q: %w", dir, err)
	}
	if !fi.IsDir() {
		return Root{}, fmt.Errorf("folder %q: %w", dir, syscall.ENOTDIR)
	}
	return Root{Dir: abs, Real: real, info: fi}, nil
}

// segmentEnd is where the segment of slash-separated path p that starts at
// i ends: the index of the next slash, or len(p).
func segmentEnd(p string, i int) int {
	if j := strings.IndexByte(p[i:], '/'); j >= 0 {
		return i + j
	}
	return len(p)
}

// Resolve returns the clean absolute name abs with every symlink resolved,
// and what it names, symlinks followed: filepath.EvalSymlinks and a stat
// of its result. A name with no symlink on the way (most document roots)
// costs one lstat a segment, where those two cost one more and allocate a
// string a segment.
func Resolve(abs string) (string, fs.FileInfo, error) {
	if abs == "/" {
		fi, err := os.Stat(abs)
		return abs, fi, err
	}
	var fi fs.FileInfo
	for i := 1; i < len(abs); {
		end := segmentEnd(abs, i)
		var err error
		if fi, err = os.Lstat(abs[:end]); err != nil {
			return "", nil, err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			real, err := filepath.EvalSymlinks(abs)
			if err != nil {
				return "", nil, err
			}
			fi, err := os.Stat(real)
			return real, fi, err
		}
		i = end + 1
	}
	return abs, fi, nil
}

// Found is the file or folder that a URL path names below a Root.
type Found struct {
	// Name is the leading part of the URL path that names it.
	Name string

	// PathInfo is the rest of the URL path: "" or starting with "/".
	PathInfo string

	// File is its absolute name, every symlink resolved, inside Root.Real.
	File string

	// Info tells what it is, symlinks followed.
	Info fs.FileInfo
}

// Find walks URL path p (decoded, starting with "/") below the folder and
// returns the first thing on the way that is not a folder, with the rest of
// p as its PathInfo, as Apache finds a CGI script and its PATH_INFO; a path
// that only goes through folders returns the last one with no PathInfo.
// Every "." or ".." segment, NUL byte or backslash anywhere in p is refused
// with ErrNotFound, as is what a symlink leads to outside Real.
func (rt Root) Find(p string) (Found, error) {
	if !validPath(p) {
		return Found{}, ErrNotFound
	}
	// Real holds no symlink: walk p's segments below it with lstat, and
	// the first that is not a folder is the file, named without a symlink,
	// inside Real. A segment that is a symlink takes the general way.
	fi := rt.info
	for i := 1; i < len(p); {
		end := segmentEnd(p, i)
		if end == i { // an empty segment
			i++
			continue
		}
		var err error
		if fi, err = os.Lstat(rt.Real + p[:end]); err != nil {
			return Found{}, classify(err)
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return rt.findLinked(p)
		case !fi.IsDir():
			return Found{Name: p[:end], PathInfo: p[end:], File: filepath.Clean(rt.Real + p[:end]), Info: fi}, nil
		}
		i = end + 1
	}
	if fi == nil { // "/", and a Root not from OpenRoot
		var err error
		if fi, err = os.Stat(rt.Real); err != nil {
			return Found{}, classify(err)
		}
	}
	return Found{Name: p, File: filepath.Clean(rt.Real + p), Info: fi}, nil
}

// findLinked is Find for a path with a symlink below Real: each name is
// resolved, and must stay inside Real.
func (rt Root) findLinked(p string) (Found, error) {
	// Most requests name a file or folder outright: one stat.
	fi, err := os.Stat(rt.Real + p)
	if err == nil {
		return rt.found(rt.Real+p, fi, p, "")
	}
	if !errors.Is(err, syscall.ENOTDIR) {
		return Found{}, classify(err)
	}
	// A file on the way, and PATH_INFO after it.
	for i := 1; i < len(p); {
		end := segmentEnd(p, i)
		if end == i {
			i++
			continue
		}
		fi, err := os.Stat(rt.Real + p[:end])
		if err != nil {
			return Found{}, classify(err)
		}
		if !fi.IsDir() {
			return rt.found(rt.Real+p[:end], fi, p[:end], p[end:])
		}
		i = end + 1
	}
	return Found{}, ErrNotFound
}

// found checks that name, which stat described as fi, resolves inside the
// folder and returns it as a Found.
func (rt Root) found(name string, fi fs.FileInfo, urlName, pathInfo string) (Found, error) {
	real, err := filepath.EvalSymlinks(name)
	if err != nil {
		return Found{}, classify(err)
	}
	if !Within(real, rt.Real) {
		return Found{}, ErrNotFound
	}
	return Found{Name: urlName, PathInfo: pathInfo, File: real, Info: fi}, nil
}

// Within reports whether the clean absolute path name is dir or lies
// below it.
func Within(name, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(name, "/")
	}
	rest, ok := strings.CutPrefix(name, dir)
	return ok && (rest == "" || rest[0] == '/')
}

// validPath reports whether URL path p may be looked up: absolute, with no
// NUL byte, no backslash and no "." or ".." segment.
func validPath(p string) bool {
	if p == "" || p[0] != '/' || strings.ContainsAny(p, "\x00\\") {
		return false
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// classify maps a file system error to ErrNotFound or ErrForbidden, or
// returns it as it is when it is neither.
func classify(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR),
		errors.Is(err, syscall.ENAMETOOLONG), errors.Is(err, syscall.ELOOP):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: %w", ErrForbidden, err)
	}
	return err
}
