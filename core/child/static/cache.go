package static

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults of the file cache (see Options.MaxCachedFile and
// Options.CacheBytes).
const (
	defaultMaxCachedFile = 64 << 10
	defaultCacheBytes    = 16 << 20
	// cacheValidity is how long a cached file is served without looking at
	// the file system again. A changed or deleted file is therefore seen
	// within half a second, on the first request after that.
	cacheValidity = 500 * time.Millisecond
)

// acceptRanges is ServeContent's Accept-Ranges value, shared by every
// response from the cache.
var acceptRanges = []string{"bytes"}

// fileCache holds small files in memory, with the headers that serve them,
// keyed by URL path: the open-file and stat cache of nginx's open_file_cache
// and the body of a small file in one. An entry is trusted for validity;
// the first request after that opens the file again, through the same
// checks as an uncached request (symlinks, the document root, ".ht"), and
// compares device, inode, size and modification time. A file that changed
// is read again, one that is gone is dropped, and meanwhile the requests
// that did not do the check are served the cached copy.
//
// Entries are bounded by count of bytes (maxBytes); when a new file does
// not fit, entries not hit since the last sweep are evicted first (a
// second-chance clock). Reads take no lock.
type fileCache struct {
	maxFile  int64
	maxBytes int64
	validity time.Duration
	entries  sync.Map // URL path -> *entry
	bytes    atomic.Int64
	sweep    sync.Mutex // one eviction sweep at a time
}

// entry is a cached file: its identity, its body, and the header values of
// a 200 response.
type entry struct {
	root  string // the resolved document root it was found under
	index string // the index file name when the URL path names a directory
	id    identity
	body  []byte
	mtime time.Time

	ctype, etag, lastMod, length []string

	// fastHdr is the header block of a 200 from this entry as the
	// FastResponder returns it: every header above, Server and
	// X-Content-Type-Options, each line ending in CRLF.
	fastHdr []byte

	checked  atomic.Int64 // when it was last found unchanged, in Unix nanoseconds
	checking atomic.Bool  // a request is checking it now
	hit      atomic.Bool  // served since the last eviction sweep
}

// identity is what tells a file from its successor at the same path.
type identity struct {
	dev, ino uint64
	size     int64
	mtime    int64 // Unix nanoseconds
}

func (f *file) identity() identity {
	return identity{dev: f.dev, ino: f.ino, size: f.size, mtime: f.mtime.UnixNano()}
}

// newFileCache returns a cache for files up to maxFile bytes, holding at
// most maxBytes, or nil when either is negative (the cache is off).
func newFileCache(maxFile, maxBytes int64) *fileCache {
	if maxFile == 0 {
		maxFile = defaultMaxCachedFile
	}
	if maxBytes == 0 {
		maxBytes = defaultCacheBytes
	}
	if maxFile < 0 || maxBytes < 0 {
		return nil
	}
	return &fileCache{maxFile: min(maxFile, maxBytes), maxBytes: maxBytes, validity: cacheValidity}
}

// lookup returns the entry for URL path p under the resolved root, or nil.
func (c *fileCache) lookup(p, root string) *entry {
	v, ok := c.entries.Load(p)
	if !ok {
		return nil
	}
	e := v.(*entry)
	if e.root != root {
		return nil // the document root was repointed
	}
	return e
}

// fresh reports whether e may be served without a look at the file system:
// it was checked within validity, or another request is checking it now. It
// returns false to the one request that is to check.
func (c *fileCache) fresh(e *entry, now int64) bool {
	if now-e.checked.Load() < int64(c.validity) {
		return true
	}
	// One request checks; the others serve what is cached meanwhile.
	return !e.checking.CompareAndSwap(false, true)
}

// add caches the open regular file f, found for URL path p (index names the
// index file if p is a directory), and returns the new entry, or nil when
// the file is too large, the read came up short, or the file changed while
// it was read.
func (c *fileCache) add(h *handler, f *file, p, index, root string) *entry {
	if f.size > c.maxFile {
		return nil
	}
	body := make([]byte, f.size)
	for off := 0; off < len(body); {
		n, err := syscall.Pread(f.fd, body[off:], int64(off))
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return nil
		}
		off += n
	}
	name := p
	if index != "" {
		name = index
	}
	ct := h.contentType(name)
	if ct == nil {
		ct = []string{http.DetectContentType(body[:min(len(body), 512)])}
	}
	e := &entry{
		root:   root,
		index:  index,
		id:     f.identity(),
		body:   body,
		mtime:  f.mtime,
		ctype:  ct,
		etag:   []string{etag(f.mtime, f.size)},
		length: []string{strconv.FormatInt(f.size, 10)},
	}
	if !f.mtime.IsZero() && !f.mtime.Equal(time.Unix(0, 0)) {
		e.lastMod = []string{f.mtime.UTC().Format(http.TimeFormat)}
	}
	e.fastHdr = fastHeader(e, h.server[0])
	e.checked.Store(time.Now().UnixNano())
	c.store(strings.Clone(p), e) // p may be a view of a request buffer
	return e
}

// fastHeader renders the header block of a 200 from e.
func fastHeader(e *entry, server string) []byte {
	var b []byte
	line := func(k, v string) {
		b = append(b, k...)
		b = append(b, ": "...)
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < ' ' || c == 0x7f {
				b = append(b, ' ') // never a header injection
			} else {
				b = append(b, c)
			}
		}
		b = append(b, "\r\n"...)
	}
	line("Accept-Ranges", acceptRanges[0])
	line("Content-Length", e.length[0])
	line("Content-Type", e.ctype[0])
	line("Etag", e.etag[0])
	if e.lastMod != nil {
		line("Last-Modified", e.lastMod[0])
	}
	line("Server", server)
	line("X-Content-Type-Options", nosniffValue[0])
	return b
}

// store puts e under p, evicting to stay within maxBytes.
func (c *fileCache) store(p string, e *entry) {
	size := int64(len(e.body))
	if c.bytes.Load()+size > c.maxBytes {
		c.evict(size)
	}
	if old, loaded := c.entries.Swap(p, e); loaded {
		c.bytes.Add(-int64(len(old.(*entry).body)))
	}
	c.bytes.Add(size)
}

// drop removes e, if it is still the entry for p.
func (c *fileCache) drop(p string, e *entry) {
	if c.entries.CompareAndDelete(p, e) {
		c.bytes.Add(-int64(len(e.body)))
	}
}

// evict makes room for need bytes: entries not hit since the last sweep go
// first; if that is not enough, the others follow.
func (c *fileCache) evict(need int64) {
	c.sweep.Lock()
	defer c.sweep.Unlock()
	for pass := 0; pass < 2 && c.bytes.Load()+need > c.maxBytes; pass++ {
		c.entries.Range(func(k, v any) bool {
			e := v.(*entry)
			if pass == 0 && e.hit.Swap(false) {
				return true
			}
			c.drop(k.(string), e)
			return c.bytes.Load()+need > c.maxBytes
		})
	}
}

// serveCached serves URL path p from the cache if it can, and reports
// whether it did.
func (h *handler) serveCached(w http.ResponseWriter, r *http.Request, p string, st *rootState) bool {
	e := h.cachedEntry(p, st)
	if e == nil {
		return false
	}
	e.hit.Store(true)
	h.serveEntry(w, r, e)
	return true
}

// cachedEntry returns the cache's entry for URL path p, or nil. An entry
// past its validity is checked against the file system first; one found
// changed or gone is dropped, and nil returned.
func (h *handler) cachedEntry(p string, st *rootState) *entry {
	c := h.cache
	e := c.lookup(p, st.real)
	if e == nil {
		return nil
	}
	if !c.fresh(e, time.Now().UnixNano()) {
		ok := h.unchanged(e, p, st)
		e.checking.Store(false)
		if !ok {
			c.drop(p, e)
			return nil
		}
		e.checked.Store(time.Now().UnixNano())
	}
	return e
}

// ServeFast is the child's fast path (internal/childrt.FastResponder): a GET or
// HEAD of URL path p that is, or can now be, answered from the cache gets
// its 200's header block and body; anything else (a path checkPath
// refuses, a directory without its slash, a large file, an error, the
// welcome page) is declined and served by ServeHTTP.
func (h *handler) ServeFast(p string) (header, body []byte, ok bool) {
	if h.cache == nil || checkPath(p, "") != 0 {
		return nil, nil, false
	}
	st := h.rootState()
	if st == nil {
		return nil, nil, false
	}
	e := h.cachedEntry(p, st)
	if e == nil {
		if e = h.fill(p, st); e == nil {
			return nil, nil, false
		}
	}
	e.hit.Store(true)
	return e.fastHdr, e.body, true
}

// fill opens what URL path p names and caches it if it is a small regular
// file, or a directory (p ending in "/") whose index file is one.
func (h *handler) fill(p string, st *rootState) *entry {
	f, index := h.openServable(p, st)
	if f == nil {
		return nil
	}
	defer f.Close()
	return h.cache.add(h, f, p, index, st.real)
}

// openServable opens what a request for URL path p is answered with: the
// regular file p names without a trailing slash, or the index file (and
// its name) of the folder p names with one. nil when p names neither; the
// caller closes the file.
func (h *handler) openServable(p string, st *rootState) (*file, string) {
	f, code := h.open(p, st)
	if code != 0 {
		return nil, ""
	}
	slash := p[len(p)-1] == '/'
	switch {
	case f.isRegular() && !slash:
		return f, ""
	case f.isDir() && slash:
		f.Close()
		idx, name, code := h.findIndex(p, st)
		if code != 0 || idx == nil {
			return nil, ""
		}
		return idx, name
	}
	f.Close()
	return nil, ""
}

// unchanged opens what URL path p names again, through every check of an
// uncached request, and reports whether it is still the file e holds.
func (h *handler) unchanged(e *entry, p string, st *rootState) bool {
	var f *file
	if e.index != "" {
		var idx string
		var code int
		f, idx, code = h.findIndex(p, st)
		if code != 0 || f == nil {
			return false
		}
		if idx != e.index {
			f.Close()
			return false
		}
	} else {
		var code int
		f, code = h.open(p, st)
		if code != 0 {
			return false
		}
	}
	defer f.Close()
	return f.isRegular() && f.identity() == e.id
}

// serveEntry answers from a cache entry. A plain GET or HEAD, the common
// case, is written straight from the entry's prepared headers; a request
// with a Range or a condition goes through http.ServeContent over the
// cached bytes, so that it is answered exactly as an uncached one.
func (h *handler) serveEntry(w http.ResponseWriter, r *http.Request, e *entry) {
	hdr := w.Header()
	hdr["Content-Type"] = e.ctype
	hdr["Etag"] = e.etag
	if needsServeContent(r.Header) {
		serveRanges(w, r, e.mtime, bytes.NewReader(e.body), int64(len(e.body)))
		return
	}
	if e.lastMod != nil {
		hdr["Last-Modified"] = e.lastMod
	}
	hdr["Accept-Ranges"] = acceptRanges
	hdr["Content-Length"] = e.length
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(e.body)
	}
}

// needsServeContent reports whether a request carries a header that
// http.ServeContent acts on: Range or any If-* condition.
func needsServeContent(hdr http.Header) bool {
	for k := range hdr {
		if k == "Range" || strings.HasPrefix(k, "If-") {
			return true
		}
	}
	return false
}
