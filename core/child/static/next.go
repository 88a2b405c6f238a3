package static

import (
	"net/http"
)

// serveOrPass is ServeHTTP in front of an app (Options.Next): what a GET or
// HEAD names below the root is served, everything else goes to the app.
func (h *handler) serveOrPass(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.next.ServeHTTP(w, r)
		return
	}
	p := r.URL.Path
	if p == "" {
		p = "/"
	}
	st := h.rootState()
	if st == nil || checkPath(p, r.URL.RawPath) != 0 || !h.holds(p, st) {
		h.next.ServeHTTP(w, r)
		return
	}
	hdr := w.Header()
	hdr["Server"] = h.server
	hdr["X-Content-Type-Options"] = nosniffValue
	h.serveFile(w, r, p, st)
}

// holds reports whether URL path p (vetted by checkPath) names what the
// files in front of an app serve: a regular file, or a folder named with
// its slash that has an index file.
func (h *handler) holds(p string, st *rootState) bool {
	_, found := h.lookup(p, st)
	return found
}

// LookupFast is the fast path's view of the files in front of an app
// (internal/childrt.FastFiles): URL path p's 200 from the cache (ok), or
// whether p names nothing here and goes to the app (app); neither, and
// net/http serves the request (a file too large to cache, say).
func (h *handler) LookupFast(p string) (header, body []byte, ok, app bool) {
	st := h.rootState()
	if st == nil || checkPath(p, "") != 0 {
		return nil, nil, false, true
	}
	e, found := h.lookup(p, st)
	if e == nil {
		return nil, nil, false, !found
	}
	e.hit.Store(true)
	return e.fastHdr, e.body, true, false
}

// lookup finds what URL path p names below the root: its cache entry
// (filled on the way when the file fits the cache), or found without one;
// a cached file costs no system call, a path that names nothing one failed
// open, as nginx's try_files costs a stat.
func (h *handler) lookup(p string, st *rootState) (e *entry, found bool) {
	if h.cache != nil {
		if e := h.cachedEntry(p, st); e != nil {
			return e, true
		}
	}
	f, index := h.openServable(p, st)
	if f == nil {
		return nil, false
	}
	defer f.Close()
	if h.cache != nil {
		e = h.cache.add(h, f, p, index, st.real)
	}
	return e, true
}
