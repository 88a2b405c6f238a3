package static

import (
	"errors"
	"io/fs"
	"net/http"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/phasedhq/phased/core/child/internal/gateway"
)

// Options configures the handler that New returns. The zero value serves the
// welcome page only, since it configures no document root.
type Options struct {
	// Root is the document root, an absolute path; a relative one is made
	// absolute against the working directory when New is called. If it does
	// not exist or is not a directory, the handler serves a built-in welcome
	// page at "/" and "/index.html" with 200 and 404 for everything else, and
	// starts serving files as soon as the directory appears. If its path
	// goes through a symlink (a deploy's "current"), repointing the symlink
	// takes effect within a second. "" means no document root is
	// configured: the welcome page is served forever.
	Root string

	// DirectoryListing, when false (the default), answers 403 Forbidden for a
	// directory without an index file, as Apache's "Options -Indexes". When
	// true such a directory is answered with an HTML listing: names escaped,
	// sorted, directories with a trailing "/", ".ht*" entries hidden.
	DirectoryListing bool

	// Index lists the index file names tried, in order, for a request that
	// names a directory. nil means ["index.html"]; an empty non-nil slice
	// means no index files. Names that are empty, ".", "..", or contain a
	// slash, a backslash or a NUL byte are ignored.
	Index []string

	// ServerName is the value of the Server header on every response; ""
	// means "phased".
	ServerName string

	// MaxCachedFile is the size up to which a file is held in memory once
	// served, and served from there (see the package documentation); 0
	// means 64 KiB, a negative value turns the cache off.
	MaxCachedFile int64

	// CacheBytes bounds the memory the cached files take; 0 means 16 MiB,
	// a negative value turns the cache off.
	CacheBytes int64

	// Next, when set, makes the handler the files in front of an app, as
	// Passenger serves an app's public folder and nginx's try_files $uri:
	// a GET or HEAD of a path that names a regular file below Root (or a
	// folder, with its slash, that has an index file) is served, and every
	// other request goes to Next: other methods, paths that name nothing
	// (or a folder without its slash, or one without an index file), paths
	// Root may not serve (".ht*", "..") and everything while Root does not
	// exist (then looked for again once a second), with no welcome page.
	Next http.Handler
}

// Header values shared by every response. net/http only reads header value
// slices, so handing out the same slice is safe and saves an allocation per
// request.
var (
	nosniffValue = []string{"nosniff"}
	allowValue   = []string{"GET, HEAD"}
	allowOptions = []string{"GET, HEAD, OPTIONS"}
	htmlType     = []string{"text/html; charset=utf-8"}
	noStoreValue = []string{"no-store"}
)

// handler is the http.Handler returned by New. It is immutable after New,
// except for state, which follows the document root as it appears or is
// swapped for another directory (a deploy that repoints a symlink), and
// noOpenat2, set once if the kernel lacks openat2.
type handler struct {
	root      string              // absolute, cleaned document root as configured; "" if none
	prefix    string              // root without a trailing slash, prepended to URL paths
	listing   bool                // Options.DirectoryListing
	index     []string            // validated index names
	server    []string            // Server header value
	welcome   page                // the welcome page
	pages     errorPages          // error pages by status
	types     map[string][]string // Content-Type by extension, built once
	recheck   time.Duration       // how long a symlinked root's resolution is trusted
	cache     *fileCache          // small files in memory; nil when off
	state     atomic.Pointer[rootState]
	noOpenat2 atomic.Bool
	next      http.Handler // Options.Next
	// missingAt is when the root was last found missing (Unix
	// nanoseconds), in front of an app, which looks again only once
	// recheck has passed: its requests cost no system call meanwhile.
	missingAt atomic.Int64
}

// rootState is the document root as last resolved.
type rootState struct {
	real   string    // the root with every symlink resolved
	direct bool      // real is the configured root itself: nothing in it to repoint
	at     time.Time // when real was resolved
}

// recheckSymlinkedRoot is how long the resolution of a document root whose
// path goes through a symlink is trusted before it is resolved again.
const recheckSymlinkedRoot = time.Second

var _ http.Handler = (*handler)(nil)

// New returns a handler serving the files under opts.Root. It never fails: a
// missing document root makes the handler serve a welcome page instead.
func New(opts Options) http.Handler {
	h := &handler{listing: opts.DirectoryListing, next: opts.Next}
	if opts.Root != "" {
		root, err := filepath.Abs(opts.Root)
		if err != nil {
			root = filepath.Clean(opts.Root)
		}
		h.root = root
		h.prefix = strings.TrimSuffix(root, "/")
	}
	idx := opts.Index
	if idx == nil {
		idx = []string{"index.html"}
	}
	for _, name := range idx {
		if validIndexName(name) {
			h.index = append(h.index, name)
		}
	}
	name := opts.ServerName
	if name == "" {
		name = "phased"
	}
	h.server = []string{name}
	h.pages = newErrorPages(name)
	h.welcome = welcomePage(h.root, name)
	h.types = contentTypes()
	h.recheck = recheckSymlinkedRoot
	h.cache = newFileCache(opts.MaxCachedFile, opts.CacheBytes)
	h.resolve()
	return h
}

// validIndexName reports whether name can be an index file name: one plain
// file name, looked up in the requested directory.
func validIndexName(name string) bool {
	return name != "" && name != "." && name != ".." &&
		!strings.ContainsAny(name, "/\\\x00")
}

// ServeHTTP serves a GET or HEAD request for a file under the document root.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.next != nil {
		h.serveOrPass(w, r)
		return
	}
	hdr := w.Header()
	hdr["Server"] = h.server
	hdr["X-Content-Type-Options"] = nosniffValue

	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		hdr["Allow"] = allowOptions
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		hdr["Allow"] = allowValue
		h.error(w, r, http.StatusMethodNotAllowed)
		return
	}

	p := r.URL.Path
	if p == "" {
		p = "/"
	}
	if code := checkPath(p, r.URL.RawPath); code != 0 {
		h.error(w, r, code)
		return
	}
	st := h.rootState()
	if st == nil {
		h.serveWelcome(w, r, p)
		return
	}
	h.serveFile(w, r, p, st)
}

// checkPath vets a decoded URL path before it touches the file system. It
// returns 0 for a path that may be served, or the status to answer with:
// 400 for a path that is not absolute or holds a NUL byte, 404 for a
// backslash, a "." or ".." segment or an encoded slash, and 403 for a segment
// starting with ".ht".
func checkPath(p, rawPath string) int {
	if p == "" || p[0] != '/' || strings.IndexByte(p, 0) >= 0 {
		return http.StatusBadRequest
	}
	if strings.IndexByte(p, '\\') >= 0 {
		return http.StatusNotFound
	}
	// An encoded slash would name a different file than the client's path
	// segments suggest; Apache refuses them too (AllowEncodedSlashes Off).
	if rawPath != "" && (strings.Contains(rawPath, "%2f") || strings.Contains(rawPath, "%2F")) {
		return http.StatusNotFound
	}
	forbidden := false
	for i := 1; i <= len(p); {
		j := strings.IndexByte(p[i:], '/')
		if j < 0 {
			j = len(p) - i
		}
		seg := p[i : i+j]
		if seg == "." || seg == ".." {
			return http.StatusNotFound
		}
		if isHT(seg) {
			forbidden = true
		}
		i += j + 1
	}
	if forbidden {
		return http.StatusForbidden
	}
	return 0
}

// text is a path held as a string or, on the hot path, as bytes read from
// the kernel, which need not be copied to a string to be checked.
type text interface{ ~string | ~[]byte }

// isHT reports whether a file name starts with ".ht", in any case so that a
// case-insensitive file system cannot be used to get around the rule.
func isHT[S text](name S) bool {
	return len(name) >= 3 && name[0] == '.' && name[1]|0x20 == 'h' && name[2]|0x20 == 't'
}

// hasHTSegment reports whether any segment of a slash-separated path starts
// with ".ht".
func hasHTSegment[S text](p S) bool {
	if isHT(p) {
		return true
	}
	for i := 0; i+1 < len(p); i++ {
		if p[i] == '/' && isHT(p[i+1:]) {
			return true
		}
	}
	return false
}

// rootState returns the document root as resolved, or nil while it does not
// exist as a directory. A root whose path has no symlink is resolved once;
// one whose path goes through a symlink is resolved again after h.recheck,
// so that a repointed symlink is followed.
func (h *handler) rootState() *rootState {
	st := h.state.Load()
	if st != nil && (st.direct || time.Since(st.at) < h.recheck) {
		return st
	}
	if st == nil && h.next != nil {
		if at := h.missingAt.Load(); at != 0 && time.Since(time.Unix(0, at)) < h.recheck {
			return nil
		}
	}
	if fresh := h.resolve(); fresh != nil {
		return fresh
	}
	if st == nil && h.next != nil {
		h.missingAt.Store(time.Now().UnixNano())
	}
	return st
}

// resolve resolves the document root again and records the result; it
// returns nil if the root is not a directory. A root that existed and
// vanished keeps its last resolution (requests then find nothing: 404).
func (h *handler) resolve() *rootState {
	real, err := resolveRoot(h.root)
	if err != nil {
		return nil
	}
	st := &rootState{real: real, direct: real == h.root, at: time.Now()}
	h.state.Store(st)
	return st
}

// resolveRoot returns root with every symlink resolved, or an error if it
// is not configured or not a directory.
func resolveRoot(root string) (string, error) {
	if root == "" {
		return "", errors.New("no document root")
	}
	real, fi, err := gateway.Resolve(root)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", &fs.PathError{Op: "stat", Path: root, Err: syscall.ENOTDIR}
	}
	return real, nil
}

// open opens the file at URL path p (already vetted by checkPath) below the
// document root and checks that it lies inside the root, with no ".ht"
// segment there. It returns the open file, or the status to answer with.
//
// The fast path opens the resolved root joined with p and lets the kernel
// refuse any symlink on the way (openat2's RESOLVE_NO_SYMLINKS): a file
// reached that way is inside the root by construction. A path through a
// symlink takes the slow path, which opens it normally and asks the kernel
// where the descriptor landed (see finalPath).
func (h *handler) open(p string, st *rootState) (*file, int) {
	fastFailed := false
	if !h.noOpenat2.Load() {
		var buf [512]byte
		name := append(append(append(buf[:0], st.real...), p...), 0)
		f, err := openFileNoSymlinks(name)
		switch {
		case err == nil:
			return f, 0
		case err == syscall.ELOOP:
			// A symlink on the way: see where it leads.
		case err == syscall.ENOSYS, err == syscall.E2BIG:
			h.noOpenat2.Store(true)
		case err == syscall.EPERM, err == syscall.EINVAL:
			// Perhaps a seccomp filter or a kernel that does not know
			// openat2 or its flags: if plain open works, stop trying.
			fastFailed = true
		case !st.direct && errors.Is(err, fs.ErrNotExist):
			// Perhaps the root was repointed since it was resolved.
		default:
			return nil, statusFor(err)
		}
	}

	name := h.prefix + p
	f, err := openFile(name)
	if err != nil {
		return nil, statusFor(err)
	}
	if fastFailed {
		h.noOpenat2.Store(true)
	}
	var buf [512]byte
	real, err := finalPath(f.fd, name, buf[:])
	if err != nil {
		f.Close()
		return nil, statusFor(err)
	}
	rel, ok := within(real, st.real)
	if !ok {
		// The document root may have been repointed since it was
		// resolved; resolve it again before refusing.
		if fresh := h.resolve(); fresh != nil && fresh.real != st.real {
			rel, ok = within(real, fresh.real)
		}
		if !ok {
			f.Close()
			return nil, http.StatusNotFound
		}
	}
	if hasHTSegment(rel) {
		f.Close()
		return nil, http.StatusForbidden
	}
	return f, 0
}

// within reports whether real is root or lies below it, and returns real's
// path relative to root: "" for the root itself, otherwise starting with "/".
func within[S text](real S, root string) (S, bool) {
	if root == "/" {
		if len(real) == 0 || real[0] != '/' {
			return real[:0], false
		}
		return real, true
	}
	if len(real) < len(root) || string(real[:len(root)]) != root {
		return real[:0], false
	}
	rel := real[len(root):]
	if len(rel) > 0 && rel[0] != '/' {
		return real[:0], false
	}
	return rel, true
}

// statusFor maps a file system error to the status a client sees. Errors a
// request path can provoke are 4xx; only a server in trouble gets a 5xx.
func statusFor(err error) int {
	switch {
	case errors.Is(err, fs.ErrNotExist),
		errors.Is(err, syscall.ENOTDIR),
		errors.Is(err, syscall.ENAMETOOLONG),
		errors.Is(err, syscall.ELOOP),
		errors.Is(err, syscall.EINVAL):
		return http.StatusNotFound
	case errors.Is(err, fs.ErrPermission),
		errors.Is(err, syscall.ENXIO), // a socket, or a device with nothing behind it
		errors.Is(err, syscall.ENODEV):
		return http.StatusForbidden
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// serveFile serves the file or directory at URL path p.
func (h *handler) serveFile(w http.ResponseWriter, r *http.Request, p string, st *rootState) {
	if h.cache != nil && h.serveCached(w, r, p, st) {
		return
	}
	f, code := h.open(p, st)
	if code != 0 {
		h.error(w, r, code)
		return
	}
	defer f.Close()
	switch {
	case f.isDir():
		if p[len(p)-1] != '/' {
			h.redirectToDir(w, r)
			return
		}
		h.serveDir(w, r, f, p, st)
	case !f.isRegular():
		h.error(w, r, http.StatusForbidden)
	case p[len(p)-1] == '/':
		h.error(w, r, http.StatusNotFound)
	default:
		h.serveContent(w, r, f, p, "", st)
	}
}

// serveDir answers a request for directory dir (whose URL path p ends in a
// slash) with its first index file, a listing, or 403.
func (h *handler) serveDir(w http.ResponseWriter, r *http.Request, dir *file, p string, st *rootState) {
	f, idx, code := h.findIndex(p, st)
	if code != 0 {
		h.error(w, r, code)
		return
	}
	if f != nil {
		defer f.Close()
		h.serveContent(w, r, f, p, idx, st)
		return
	}
	if !h.listing {
		h.error(w, r, http.StatusForbidden)
		return
	}
	name := h.prefix + p
	d := dir.osFile(name)
	defer d.Close()
	h.serveListing(w, r, d, name, p, st.real)
}

// findIndex opens the first index file of directory p (ending in a slash)
// that is a regular file and returns it with its name; the caller closes
// it. It returns a nil file when there is none, and 403 when the first one
// found is forbidden.
func (h *handler) findIndex(p string, st *rootState) (*file, string, int) {
	for _, idx := range h.index {
		f, code := h.open(p+idx, st)
		if code == http.StatusForbidden {
			return nil, "", code
		}
		if code != 0 {
			continue
		}
		if !f.isRegular() {
			f.Close()
			continue
		}
		return f, idx, 0
	}
	return nil, "", 0
}

// serveContent serves an open regular file found for URL path p (index is
// the index file's name when p is a directory): from the cache, after
// adding it, when it is small enough; otherwise through
// http.ServeContent, which handles ranges and conditional requests against
// the ETag set here.
func (h *handler) serveContent(w http.ResponseWriter, r *http.Request, f *file, p, index string, st *rootState) {
	if h.cache != nil {
		if e := h.cache.add(h, f, p, index, st.real); e != nil {
			h.serveEntry(w, r, e)
			return
		}
	}
	name := p
	if index != "" {
		name = index
	}
	hdr := w.Header()
	if ct := h.contentType(name); ct != nil {
		hdr["Content-Type"] = ct
	}
	// Without a Content-Type, ServeContent sniffs the first 512 bytes; the
	// empty name keeps it from looking the extension up a second time.
	hdr["Etag"] = []string{etag(f.mtime, f.size)}
	serveRanges(w, r, f.mtime, f, f.size)
}

// contentType returns the Content-Type header value for a file name from its
// extension, or nil if the extension is unknown and the content must be
// sniffed.
func (h *handler) contentType(name string) []string {
	ext := path.Ext(name)
	if ext == "" {
		return nil
	}
	if ct, ok := h.types[ext]; ok {
		return ct
	}
	if ct := typeByExtension(ext); ct != "" {
		return []string{ct}
	}
	return nil
}

// etag returns a strong validator built from the file's modification time
// and size, as nginx does (but to the nanosecond): "<mtime>-<size>" in hex.
func etag(mtime time.Time, size int64) string {
	var b [40]byte
	buf := append(b[:0], '"')
	buf = strconv.AppendUint(buf, uint64(mtime.UnixNano()), 16)
	buf = append(buf, '-')
	buf = strconv.AppendUint(buf, uint64(size), 16)
	buf = append(buf, '"')
	return string(buf)
}

// redirectToDir answers a request for a directory without its trailing slash
// with 301 to the slash form, keeping the query. The Location is relative to
// the request ("./name/"), so a path starting with "//" cannot turn it into a
// redirect to another host and the handler works under http.StripPrefix.
func (h *handler) redirectToDir(w http.ResponseWriter, r *http.Request) {
	esc := r.URL.EscapedPath()
	loc := "./" + esc[strings.LastIndexByte(esc, '/')+1:] + "/"
	if r.URL.RawQuery != "" {
		loc += "?" + r.URL.RawQuery
	}
	w.Header()["Location"] = []string{loc}
	h.error(w, r, http.StatusMovedPermanently)
}
