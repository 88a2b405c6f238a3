package static

import (
	"bytes"
	"html"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// commonExtensions are looked up once in New so that serving them allocates
// no Content-Type header value.
var commonExtensions = []string{
	".html", ".htm", ".css", ".js", ".mjs", ".json", ".map", ".txt", ".xml",
	".svg", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".ico",
	".woff", ".woff2", ".ttf", ".otf", ".pdf", ".wasm", ".mp4", ".webm",
	".mp3", ".ogg", ".zip", ".gz", ".csv", ".md",
}

// contentTypes builds the Content-Type table for commonExtensions.
func contentTypes() map[string][]string {
	m := make(map[string][]string, len(commonExtensions))
	for _, ext := range commonExtensions {
		if ct := typeByExtension(ext); ct != "" {
			m[ext] = []string{ct}
		}
	}
	return m
}

// page is a prebuilt HTML response body with its Content-Length.
type page struct {
	body   []byte
	length []string
}

func newPage(body string) page {
	return page{body: []byte(body), length: []string{strconv.Itoa(len(body))}}
}

// errorPages holds a small HTML body for every status the handler sends
// itself.
type errorPages struct {
	byCode map[int]page
}

// errorTexts are the sentences under each error page's heading.
var errorTexts = map[int]string{
	http.StatusMovedPermanently:    "The document has moved to the directory's URL, with a trailing slash.",
	http.StatusBadRequest:          "Your browser sent a request that this server could not understand.",
	http.StatusForbidden:           "You don't have permission to access this resource.",
	http.StatusNotFound:            "The requested URL was not found on this server.",
	http.StatusMethodNotAllowed:    "Only GET and HEAD are allowed for this URL.",
	http.StatusInternalServerError: "The server could not read the requested file.",
	http.StatusServiceUnavailable:  "The server is too busy to open the requested file. Please try again.",
}

func newErrorPages(server string) errorPages {
	ep := errorPages{byCode: make(map[int]page, len(errorTexts))}
	for code, text := range errorTexts {
		title := strconv.Itoa(code) + " " + http.StatusText(code)
		ep.byCode[code] = newPage("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" +
			title + "</title></head>\n<body><h1>" + http.StatusText(code) + "</h1>\n<p>" +
			text + "</p>\n<hr><address>" + html.EscapeString(server) +
			"</address></body></html>\n")
	}
	return ep
}

// error answers with code and its prebuilt HTML page.
func (h *handler) error(w http.ResponseWriter, r *http.Request, code int) {
	pg, ok := h.pages.byCode[code]
	if !ok {
		pg = h.pages.byCode[http.StatusInternalServerError]
	}
	h.writePage(w, r, code, pg)
}

// writePage writes a prebuilt HTML page with status code; HEAD gets the
// headers only.
func (h *handler) writePage(w http.ResponseWriter, r *http.Request, code int, pg page) {
	hdr := w.Header()
	hdr["Content-Type"] = htmlType
	hdr["Content-Length"] = pg.length
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		w.Write(pg.body)
	}
}

// welcomePage builds the page served while the document root is missing.
func welcomePage(root, server string) page {
	var what string
	if root == "" {
		what = "<p>No <code>document_root</code> is configured, so there are no files to serve yet.</p>\n" +
			"<p>Set <code>document_root</code> in the configuration to the directory holding your site.</p>\n"
	} else {
		what = "<p>The <code>document_root</code> directory does not exist yet, or is not a directory this server can open:</p>\n" +
			"<pre>" + html.EscapeString(root) + "</pre>\n" +
			"<p>Create it and put an <code>index.html</code> in it; phased serves it from the next request on, no restart needed.</p>\n"
	}
	return newPage(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>phased is running</title>
<style>
body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;line-height:1.5;color:#222}
h1{font-weight:600}pre,code{background:#f3f3f3;border-radius:4px}pre{padding:.6em 1em;overflow-x:auto}
footer{margin-top:3em;color:#777;font-size:.9em}
</style></head>
<body>
<h1>phased is running</h1>
<p>This server is up and answering requests. You are seeing this page because there is nothing to serve yet.</p>
` + what + `<footer>` + html.EscapeString(server) + `</footer>
</body></html>
`)
}

// serveWelcome answers while the document root is missing: the welcome page
// at "/" and "/index.html", 404 elsewhere.
func (h *handler) serveWelcome(w http.ResponseWriter, r *http.Request, p string) {
	if p != "/" && p != "/index.html" {
		h.error(w, r, http.StatusNotFound)
		return
	}
	w.Header()["Cache-Control"] = noStoreValue
	h.writePage(w, r, http.StatusOK, h.welcome)
}

// listEntry is one line of a directory listing.
type listEntry struct {
	name string
	dir  bool
}

// serveListing answers with an HTML listing of the open directory dir, at
// file system path name (ending in "/") and URL path p.
func (h *handler) serveListing(w http.ResponseWriter, r *http.Request, dir *os.File, name, p, realRoot string) {
	dirents, err := dir.ReadDir(-1)
	if err != nil {
		h.error(w, r, statusFor(err))
		return
	}
	entries := make([]listEntry, 0, len(dirents))
	for _, de := range dirents {
		n := de.Name()
		if isHT(n) {
			continue
		}
		typ := de.Type()
		if typ&fs.ModeSymlink != 0 {
			// List a symlink only if it resolves inside the root, and
			// as whatever it points to.
			real, err := filepath.EvalSymlinks(name + n)
			if err != nil {
				continue
			}
			if _, ok := within(real, realRoot); !ok {
				continue
			}
			fi, err := os.Stat(real)
			if err != nil {
				continue
			}
			typ = fi.Mode().Type()
		}
		if typ != 0 && !typ.IsDir() {
			continue // FIFOs, sockets, devices are never served
		}
		entries = append(entries, listEntry{name: n, dir: typ.IsDir()})
	}
	slices.SortFunc(entries, func(a, b listEntry) int { return strings.Compare(a.name, b.name) })

	title := html.EscapeString(p)
	var buf bytes.Buffer
	buf.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ")
	buf.WriteString(title)
	buf.WriteString("</title></head>\n<body>\n<h1>Index of ")
	buf.WriteString(title)
	buf.WriteString("</h1>\n<ul>\n")
	if p != "/" {
		buf.WriteString("<li><a href=\"../\">../</a></li>\n")
	}
	for _, e := range entries {
		label := e.name
		if e.dir {
			label += "/"
		}
		// url.URL.String escapes the name as a path and prefixes "./"
		// when a colon would make it look like a scheme.
		href := (&url.URL{Path: label}).String()
		buf.WriteString("<li><a href=\"")
		buf.WriteString(html.EscapeString(href))
		buf.WriteString("\">")
		buf.WriteString(html.EscapeString(label))
		buf.WriteString("</a></li>\n")
	}
	buf.WriteString("</ul>\n<hr><address>")
	buf.WriteString(html.EscapeString(h.server[0]))
	buf.WriteString("</address>\n</body></html>\n")

	hdr := w.Header()
	hdr["Content-Type"] = htmlType
	hdr["Content-Length"] = []string{strconv.Itoa(buf.Len())}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(buf.Bytes())
	}
}
