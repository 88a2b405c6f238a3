package gateway

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
)

// Sendfile is X-Sendfile, as Apache's mod_xsendfile: an app (HTTP or
// FastCGI) whose answer carries "X-Sendfile: /abs/path" of a regular file
// below one of the folders has the child send that file, with the app's
// status and headers: a download the app authorized, sent without the
// app's process reading it through. Each request tells the app so
// (X-Sendfile-Type: X-Sendfile, which Rack::Sendfile, Plack's XSendfile
// and Django's sendfile backends read); a client's own X-Sendfile-Type or
// X-Accel-Mapping never reaches the app (with them a client could make a
// Rack app put its files' paths in its answers).
type Sendfile struct {
	roots []string // the folders, symlinks resolved
}

// SendfileType is what each request tells the app (its X-Sendfile-Type;
// for a gateway, HTTP_X_SENDFILE_TYPE, which HeaderVar never passes from
// a client).
const SendfileType = "X-Sendfile"

// NewSendfile returns the Sendfile of folders dirs; nil for none (X-Sendfile
// is then the app's header like any other).
func NewSendfile(dirs []string) *Sendfile {
	if len(dirs) == 0 {
		return nil
	}
	s := &Sendfile{}
	for _, d := range dirs {
		if real, err := filepath.EvalSymlinks(d); err == nil {
			d = real
		}
		s.roots = append(s.roots, filepath.Clean(d))
	}
	return s
}

// errOutside is a file named in X-Sendfile outside the folders.
var errOutside = errors.New("not below app.sendfile_paths")

// open opens the regular file name, which must be absolute and, its
// symlinks resolved, below one of the folders.
func (s *Sendfile) open(name string) (*os.File, fs.FileInfo, error) {
	if !filepath.IsAbs(name) {
		return nil, nil, errOutside
	}
	real, _, err := Resolve(filepath.Clean(name))
	if err != nil {
		return nil, nil, err
	}
	inside := false
	for _, root := range s.roots {
		inside = inside || Within(real, root) && real != root
	}
	if !inside {
		return nil, nil, errOutside
	}
	f, err := os.Open(real)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errOutside
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// Wanted reports whether an answer with status and header asks for a file
// (and not, say, a 304, which has no body to replace).
func (s *Sendfile) Wanted(status int, header http.Header) bool {
	return s != nil && status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified &&
		header.Get("X-Sendfile") != ""
}

// Serve answers r with the file the app's answer (status, header) names in
// X-Sendfile, with the app's status and headers: a 200 through
// http.ServeContent (Range, If-Modified-Since, the app's ETag), any other
// status as it is. A file it may not send is 403 (404 when missing), and
// logged.
func (s *Sendfile) Serve(w http.ResponseWriter, r *http.Request, status int, header http.Header, log *slog.Logger) {
	name := header.Get("X-Sendfile")
	f, fi, err := s.open(name)
	if err != nil {
		code := http.StatusNotFound
		if errors.Is(err, errOutside) || errors.Is(err, fs.ErrPermission) {
			code = http.StatusForbidden
		}
		log.Error("X-Sendfile: the file the app named cannot be sent", "file", name, "err", err, "path", r.URL.Path, "status", code)
		Error(w, code)
		return
	}
	defer f.Close()
	h := w.Header()
	for k, vv := range header {
		switch k {
		case "X-Sendfile", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Trailer":
		default:
			h[k] = vv
		}
	}
	if status == http.StatusOK {
		http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
		return
	}
	h.Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		io.Copy(w, f)
	}
}
