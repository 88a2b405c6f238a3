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
// its slash that has an index file. A cached file costs no system call.
func (h *handler) holds(p string, st *rootState) bool {
	if h.cache != nil && h.cachedEntry(p, st) != nil {
		return true
	}
	f, _ := h.openServable(p, st)
	if f == nil {
		return false
	}
	f.Close()
	return true
}

// LookupFast is the fast path's view of the files in front of an app
// (internal/childrt.FastFiles): URL path p's 200 from the cache (ok), or
// whether p names nothing here and goes to the app (app); neither, and
// net/http serves the request (a file too large to cache, say). A path
// that names nothing costs one failed open, as nginx's try_files costs a
// stat.
func (h *handler) LookupFast(p string) (header, body []byte, ok, app bool) {
	st := h.rootState()
	if st == nil || checkPath(p, "") != 0 {
		return nil, nil, false, true
	}
	if h.cache != nil {
		if e := h.cachedEntry(p, st); e != nil {
			e.hit.Store(true)
			return e.fastHdr, e.body, true, false
		}
	}
	f, index := h.openServable(p, st)
	if f == nil {
		return nil, nil, false, true
	}
	defer f.Close()
	if h.cache != nil {
		if e := h.cache.add(h, f, p, index, st.real); e != nil {
			e.hit.Store(true)
			return e.fastHdr, e.body, true, false
		}
	}
	return nil, nil, false, false
}
