package proxy

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/phasedhq/phased/core/child/internal/gateway"
)

// X-Sendfile, as Apache's mod_xsendfile: an app whose answer carries
// "X-Sendfile: /abs/path" of a regular file below one of
// Options.SendfilePaths has the child send that file, with the app's status
// and headers (a download the app authorized, sent without the app's
// process reading it through). Each request tells the app so
// ("X-Sendfile-Type: X-Sendfile", which Rack::Sendfile, Plack's XSendfile
// and Django's sendfile backends read). A client's own X-Sendfile-Type or
// X-Accel-Mapping never reaches the app: with them a client could make a
// Rack app name its files' paths in its answers.

// errSendfile is what the reverse proxy's ModifyResponse returns for an
// answer the child sends a file for; its ErrorHandler then sends it.
var errSendfile = errors.New("X-Sendfile answer")

type sendfileKey struct{}

// sendfiled is an X-Sendfile answer, from ModifyResponse to the
// ErrorHandler through the request's context.
type sendfiled struct {
	name   string // as the app named it
	status int
	header http.Header
	file   *os.File
	info   fs.FileInfo
	err    error // the file cannot be sent: 403 (outside the paths) or 404
}

// errOutside is a file named in X-Sendfile outside app.sendfile_paths.
var errOutside = errors.New("not below app.sendfile_paths")

// sendfileRoots resolves the folders an app may name files in.
func sendfileRoots(dirs []string) []string {
	var roots []string
	for _, d := range dirs {
		if real, err := filepath.EvalSymlinks(d); err == nil {
			d = real
		}
		roots = append(roots, filepath.Clean(d))
	}
	return roots
}

// withSendfile gives r a place for its answer's X-Sendfile.
func withSendfile(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), sendfileKey{}, new(sendfiled)))
}

// takeSendfile is the ModifyResponse step for an answer with X-Sendfile:
// it opens the file and returns errSendfile, leaving the answer to
// serveSendfile; nil for any other answer.
func (p *Proxy) takeSendfile(resp *http.Response) error {
	name := resp.Header.Get("X-Sendfile")
	if name == "" || resp.StatusCode < 200 || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		return nil
	}
	sf, _ := resp.Request.Context().Value(sendfileKey{}).(*sendfiled)
	if sf == nil {
		return nil
	}
	sf.name, sf.status, sf.header = name, resp.StatusCode, resp.Header
	for _, h := range []string{"X-Sendfile", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Trailer"} {
		sf.header.Del(h)
	}
	sf.file, sf.info, sf.err = p.openSendfile(name)
	return errSendfile
}

// openSendfile opens the regular file name, which must be absolute and,
// its symlinks resolved, below one of the sendfile paths.
func (p *Proxy) openSendfile(name string) (*os.File, fs.FileInfo, error) {
	if !filepath.IsAbs(name) {
		return nil, nil, errOutside
	}
	real, err := filepath.EvalSymlinks(filepath.Clean(name))
	if err != nil {
		return nil, nil, err
	}
	inside := false
	for _, root := range p.sendfile {
		inside = inside || gateway.Within(real, root) && real != root
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

// serveSendfile answers r with the file its app named in X-Sendfile, with
// the app's status and headers: a 200 through http.ServeContent (Range,
// If-Modified-Since, the app's ETag), any other status as it is.
func (p *Proxy) serveSendfile(w http.ResponseWriter, r *http.Request) {
	sf, _ := r.Context().Value(sendfileKey{}).(*sendfiled)
	if sf == nil { // cannot be: takeSendfile found it
		gateway.Error(w, http.StatusInternalServerError)
		return
	}
	if sf.err != nil {
		code := http.StatusNotFound
		if errors.Is(sf.err, errOutside) || errors.Is(sf.err, fs.ErrPermission) {
			code = http.StatusForbidden
		}
		p.o.Log.Error("X-Sendfile: the file the app named cannot be sent", "file", sf.name, "err", sf.err, "path", r.URL.Path, "status", code)
		gateway.Error(w, code)
		return
	}
	defer sf.file.Close()
	for k, vv := range sf.header {
		w.Header()[k] = vv
	}
	if sf.status == http.StatusOK {
		http.ServeContent(w, r, sf.info.Name(), sf.info.ModTime(), sf.file)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(sf.info.Size(), 10))
	w.WriteHeader(sf.status)
	if r.Method != http.MethodHead {
		io.Copy(w, sf.file)
	}
}
