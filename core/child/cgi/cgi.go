package cgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cgi"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/phasedhq/phased/core/child/internal/gateway"
)

// Defaults of the Options' zero fields.
const (
	// DefaultTimeout bounds how long a script runs when Options.Timeout
	// is 0, as Apache's Timeout does.
	DefaultTimeout = 60 * time.Second
	// DefaultMaxBufferedBody bounds a request body of unknown length when
	// Options.MaxBufferedBody is 0.
	DefaultMaxBufferedBody = 64 << 20
)

// defaultPath is the PATH of a script when the child has none to pass.
const defaultPath = "/usr/local/bin:/usr/bin:/bin"

// defaultInheritEnv is the allow-list of the child's environment variables
// a script gets when Options.InheritEnv is nil.
var defaultInheritEnv = []string{"PATH", "TZ"}

// Alias maps a URL path prefix to a folder of scripts, as Apache's
// ScriptAlias: with Prefix "/cgi-bin/" and Dir "/srv/cgi-bin",
// "/cgi-bin/app/x?y" runs /srv/cgi-bin/app with PATH_INFO "/x".
type Alias struct {
	// Prefix is the URL path prefix, starting and ending with "/".
	Prefix string

	// Dir is the folder of the scripts.
	Dir string
}

// Options configures the Handler that New returns.
type Options struct {
	// Aliases are the URL prefixes that run scripts; the longest prefix
	// that matches a request's path wins. At least one is required.
	Aliases []Alias

	// Next serves the requests that no alias matches; nil answers them 404.
	Next http.Handler

	// Timeout bounds how long a script runs: past it, its process group is
	// killed, and the client gets 504 if nothing was sent yet or a cut
	// connection if it was. 0 means DefaultTimeout.
	Timeout time.Duration

	// InheritEnv is the allow-list of the child's environment variables a
	// script gets, when they are set; nil means PATH and TZ. Without PATH
	// in it, or in the child's environment, a script gets
	// PATH=/usr/local/bin:/usr/bin:/bin.
	InheritEnv []string

	// Env are more "NAME=value" variables for every script, as Apache's
	// SetEnv; they override the CGI meta-variables.
	Env []string

	// DocumentRoot is DOCUMENT_ROOT, the site's document root.
	DocumentRoot string

	// MaxBufferedBody bounds a request body of unknown length, which is
	// read whole before the script starts to learn its CONTENT_LENGTH; 0
	// means DefaultMaxBufferedBody. A longer one is answered 413.
	MaxBufferedBody int64

	// Software is SERVER_SOFTWARE; "" means "phased".
	Software string

	// Logger receives the scripts' stderr lines (at warn) and what went
	// wrong running them (at error); nil means slog.Default().
	Logger *slog.Logger
}

// Handler is an http.Handler that runs CGI scripts, one process per
// request, as Apache's mod_cgi. The package documentation tells which
// files run, with what environment, and how they are bounded.
type Handler struct {
	aliases  []Alias // longest prefix first
	next     http.Handler
	timeout  time.Duration
	env      []string // from the child's environment and Options.Env
	docRoot  string
	maxBody  int64
	software string
	log      *slog.Logger
	exe      string
}

var _ http.Handler = (*Handler)(nil)

// New returns a Handler for opts, or an error when an alias is not valid.
// The folders need not exist yet.
func New(opts Options) (*Handler, error) {
	if len(opts.Aliases) == 0 {
		return nil, errors.New("cgi: no script alias")
	}
	exe, err := selfExe()
	if err != nil {
		return nil, fmt.Errorf("cgi: the launcher: %w", err)
	}
	h := &Handler{
		next:     opts.Next,
		timeout:  opts.Timeout,
		docRoot:  opts.DocumentRoot,
		maxBody:  opts.MaxBufferedBody,
		software: opts.Software,
		log:      opts.Logger,
		exe:      exe,
	}
	for _, a := range opts.Aliases {
		if !strings.HasPrefix(a.Prefix, "/") || !strings.HasSuffix(a.Prefix, "/") {
			return nil, fmt.Errorf("cgi: alias prefix %q does not start and end with a slash", a.Prefix)
		}
		if a.Dir == "" {
			return nil, fmt.Errorf("cgi: alias %q has no folder", a.Prefix)
		}
		dir, err := filepath.Abs(a.Dir)
		if err != nil {
			return nil, fmt.Errorf("cgi: alias %q: %w", a.Prefix, err)
		}
		h.aliases = append(h.aliases, Alias{Prefix: a.Prefix, Dir: dir})
	}
	sort.SliceStable(h.aliases, func(i, j int) bool { return len(h.aliases[i].Prefix) > len(h.aliases[j].Prefix) })
	if h.timeout <= 0 {
		h.timeout = DefaultTimeout
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBufferedBody
	}
	if h.software == "" {
		h.software = "phased"
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.env = baseEnv(opts.InheritEnv, opts.Env)
	return h, nil
}

// baseEnv returns the variables every script gets besides the request's:
// the allow-listed ones of the child's environment and the configured
// extras. net/http/cgi passes LD_LIBRARY_PATH on by itself: unless it is
// allowed, it is set empty here and the launcher drops it.
func baseEnv(inherit, extra []string) []string {
	if inherit == nil {
		inherit = defaultInheritEnv
	}
	env := []string{"PATH=" + defaultPath}
	allowedLD := false
	for _, name := range inherit {
		if v, ok := os.LookupEnv(name); ok && v != "" {
			env = append(env, name+"="+v)
		}
		allowedLD = allowedLD || name == "LD_LIBRARY_PATH"
	}
	if !allowedLD {
		env = append(env, "LD_LIBRARY_PATH=")
	}
	return append(env, extra...)
}

// ServeHTTP runs the script that r names below an alias's folder, or hands
// r to Options.Next when no alias matches.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	var alias Alias
	for _, a := range h.aliases {
		if strings.HasPrefix(p, a.Prefix) {
			alias = a
			break
		}
	}
	if alias.Prefix == "" {
		if h.next != nil {
			h.next.ServeHTTP(w, r)
			return
		}
		gateway.Error(w, http.StatusNotFound)
		return
	}
	root, err := gateway.OpenRoot(alias.Dir)
	if err != nil {
		h.log.Warn("cgi: script folder", "err", err)
		gateway.Error(w, http.StatusNotFound)
		return
	}
	f, err := root.Find(p[len(alias.Prefix)-1:])
	switch {
	case errors.Is(err, gateway.ErrNotFound):
		gateway.Error(w, http.StatusNotFound)
	case errors.Is(err, gateway.ErrForbidden):
		gateway.Error(w, http.StatusForbidden)
	case err != nil:
		h.log.Error("cgi: looking up the script", "err", err, "path", p)
		gateway.Error(w, http.StatusInternalServerError)
	case !f.Info.Mode().IsRegular() || f.Info.Mode().Perm()&0o111 == 0:
		// A folder, a device or a file no one may run: 403, as mod_cgi's
		// "attempt to invoke directory as script" and "file permissions
		// deny server execution".
		gateway.Error(w, http.StatusForbidden)
	default:
		f.Name = alias.Prefix[:len(alias.Prefix)-1] + f.Name
		h.run(w, r, alias, f)
	}
}

// run runs script f for r.
func (h *Handler) run(w http.ResponseWriter, r *http.Request, alias Alias, f gateway.Found) {
	body, ok := gateway.RequestBody(w, r, h.maxBody, 0, "")
	if !ok {
		return
	}
	defer body.Close()

	log := h.log.With("script", f.Name)
	env := make([]string, 0, 40+len(r.Header)+len(h.env))
	s := gateway.Script{Name: f.Name, Filename: f.File, PathInfo: f.PathInfo, DocumentRoot: h.docRoot, Software: h.software}
	gateway.Vars(r, s, body.Length, func(name, value string) {
		env = append(env, name+"="+value)
	})
	env = append(env, "CONTEXT_PREFIX="+alias.Prefix[:len(alias.Prefix)-1], "CONTEXT_DOCUMENT_ROOT="+alias.Dir)
	env = append(env, h.env...)

	// The request as net/http/cgi sees it: a body of known length, and
	// only the headers that Vars passes, so that it adds no other.
	req := *r
	req.Header = make(http.Header, len(r.Header))
	for k, vv := range r.Header {
		if _, ok := gateway.HeaderVar(k); ok {
			req.Header[k] = vv
		}
	}
	req.TransferEncoding = nil
	req.ContentLength = body.Length
	req.Body = http.NoBody
	if body.Length > 0 {
		req.Body = io.NopCloser(body)
	}

	pr, pw, err := os.Pipe()
	if err != nil {
		log.Error("cgi: stderr pipe", "err", err)
		gateway.Error(w, http.StatusInternalServerError)
		return
	}
	pgids := make(chan int, 1)
	stderrDone := make(chan struct{})
	go func() {
		defer close(stderrDone)
		readStderr(pr, pgids, gateway.NewLineLog(log, "cgi stderr"))
	}()

	ch := &cgi.Handler{
		Path:   h.exe,
		Root:   f.Name,
		Dir:    filepath.Dir(f.File),
		Env:    env,
		Args:   []string{launchArg, f.File},
		Logger: slog.NewLogLogger(log.Handler(), slog.LevelError),
		Stderr: pw,
	}
	tw := &trackWriter{ResponseWriter: w, rc: http.NewResponseController(w)}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	served := make(chan struct{})
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		select {
		case <-served:
			return
		case <-ctx.Done():
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil {
			tw.timedOut.Store(true)
		}
		select {
		case pgid := <-pgids:
			syscall.Kill(-pgid, syscall.SIGKILL)
		case <-served:
		}
	}()
	ch.ServeHTTP(tw, &req)
	close(served)
	<-killed
	pw.Close()
	// Wait a moment for the last lines of stderr, but not for a script's
	// descendant that kept it open.
	select {
	case <-stderrDone:
	case <-time.After(100 * time.Millisecond):
		pr.Close()
	}

	timedOut := tw.timedOut.Load()
	if timedOut {
		log.Error("cgi: script timed out and was killed", "timeout", h.timeout)
	}
	switch {
	case !tw.wrote && timedOut:
		gateway.Error(w, http.StatusGatewayTimeout)
	case !tw.wrote:
		// net/http/cgi gave up on a bad Status line without answering.
		gateway.Error(w, http.StatusInternalServerError)
	case timedOut && !tw.errorPage:
		panic(http.ErrAbortHandler) // headers are out: cut the connection
	}
}

// readStderr reads a script's stderr: first the launcher's line telling
// the process group, sent on pgids, then the script's own lines, logged.
func readStderr(pr *os.File, pgids chan<- int, lines *gateway.LineLog) {
	defer pr.Close()
	defer lines.Close()
	br := bufio.NewReaderSize(pr, 256)
	first, err := br.ReadString('\n')
	if pgid, ok := parsePidLine(first); ok {
		pgids <- pgid
	} else {
		lines.Write([]byte(first))
	}
	if err == nil {
		io.Copy(lines, br)
	}
}

// trackWriter is the ResponseWriter net/http/cgi writes to: it turns the
// bare 500 that net/http/cgi answers for a script that was killed before
// it sent its headers into 504, and flushes each write so that a script's
// output reaches the client as it comes.
type trackWriter struct {
	http.ResponseWriter
	rc        *http.ResponseController
	timedOut  atomic.Bool
	wrote     bool
	errorPage bool // the status came from net/http/cgi, without a body
}

func (t *trackWriter) WriteHeader(code int) {
	if !t.wrote && code == http.StatusInternalServerError && t.Header().Get("Content-Type") == "" {
		if t.timedOut.Load() {
			code = http.StatusGatewayTimeout
		}
		t.errorPage = true
		t.Header().Set("Content-Type", "text/plain; charset=utf-8")
		t.wrote = true
		t.ResponseWriter.WriteHeader(code)
		fmt.Fprintf(t.ResponseWriter, "%d %s\n", code, http.StatusText(code))
		return
	}
	t.wrote = true
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackWriter) Write(b []byte) (int, error) {
	t.wrote = true
	n, err := t.ResponseWriter.Write(b)
	if err == nil {
		t.rc.Flush()
	}
	return n, err
}

// Unwrap gives http.ResponseController the ResponseWriter underneath.
func (t *trackWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }
