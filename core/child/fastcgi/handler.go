package fastcgi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/phasedhq/phased/core/child/internal/gateway"
	"github.com/phasedhq/phased/core/child/internal/spool"
)

// Defaults of the Options' zero fields.
const (
	// DefaultConnectTimeout bounds connecting to the FastCGI server when
	// Options.ConnectTimeout is 0.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultMaxBufferedBody bounds a request body of unknown length when
	// Options.MaxBufferedBody is 0.
	DefaultMaxBufferedBody = 64 << 20
)

// Options configures the Handler that New returns.
type Options struct {
	// Network is how the FastCGI server is reached: "unix" or "tcp".
	Network string

	// Address is where: a socket path for "unix", a host:port such as
	// "127.0.0.1:9000" for "tcp".
	Address string

	// Dial, when set, opens connections to the server instead, and
	// Network and Address only name it in the log.
	Dial func(ctx context.Context) (net.Conn, error)

	// Root is the document root the scripts are found in. Required.
	Root string

	// Index lists the index files tried, in order, for a path naming a
	// folder (with its trailing slash); nil means ["index.php"].
	Index []string

	// Extensions lists the file name endings that make a file a script;
	// nil means [".php"].
	Extensions []string

	// Static serves every request that names no script: files that exist
	// and are not scripts, folders with no index script, and, unless
	// FrontController is set, what does not exist. nil answers those 404.
	Static http.Handler

	// FrontController is the URL path of the script that serves requests
	// for paths that name nothing, as nginx's
	// "try_files $uri $uri/ /index.php?$query_string" does for a PHP
	// framework's front controller: it runs with that SCRIPT_NAME and no
	// PATH_INFO, the original REQUEST_URI telling it the route. A missing
	// path with a script extension is still 404. "" means none.
	FrontController string

	// Params are added to every request's params after the CGI
	// meta-variables, as nginx's fastcgi_param, and override them.
	Params []Param

	// KeepConn keeps connections to the server open between requests,
	// with at most MaxIdleConns idle: see Client.KeepConn for what that
	// costs the server. Off by default.
	KeepConn bool

	// MaxIdleConns bounds the idle connections kept with KeepConn; 0
	// means DefaultMaxIdleConns.
	MaxIdleConns int

	// IdleTimeout is how long an idle connection is kept; 0 means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration

	// ConnectTimeout bounds connecting to the server; 0 means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration

	// ReadTimeout bounds each wait for the server's next bytes, as nginx's
	// fastcgi_read_timeout; 0 means DefaultReadTimeout. Past it the client
	// gets 504, or a cut connection once the headers are out.
	ReadTimeout time.Duration

	// SendTimeout bounds each write of the request to the server; 0 means
	// DefaultSendTimeout.
	SendTimeout time.Duration

	// MaxHeaderBytes bounds the CGI header block of a response; 0 means
	// DefaultMaxHeaderBytes. A larger one is answered 502.
	MaxHeaderBytes int

	// MaxBufferedBody bounds a request body of unknown length, which is
	// read whole before the request is sent to learn its CONTENT_LENGTH;
	// 0 means DefaultMaxBufferedBody. A longer one is answered 413.
	MaxBufferedBody int64

	// BufferBody, when above 0, makes every request body be read whole
	// before the request is sent to the server, BufferBody bytes of it in
	// memory and the rest in an unlinked temporary file in TempDir, so
	// that a client sending slowly holds no FastCGI worker (nginx's
	// fastcgi_request_buffering). Then a body over MaxBufferedBody is 413,
	// whatever its length. 0 streams a body of known length as it comes.
	BufferBody int64

	// ResponseBuffer, when above 0, makes the response body be read from
	// the server as fast as it sends it, ResponseBuffer bytes of it in
	// memory and up to MaxTempFileSize more in an unlinked temporary file
	// in TempDir, while the client reads it at its own pace: the server's
	// worker is free once it has answered, however slow the client
	// (nginx's fastcgi_buffering). Past both, the rest flows at the
	// client's pace. 0 copies the body to the client as it is read.
	ResponseBuffer  int64
	MaxTempFileSize int64

	// TempDir is where BufferBody's and ResponseBuffer's temporary files
	// go; "" means the system's.
	TempDir string

	// Software is SERVER_SOFTWARE; "" means "phased".
	Software string

	// SendfilePaths are the folders whose files a script may name in an
	// X-Sendfile header for the handler to send (gateway.Sendfile, as
	// mod_xsendfile); none: X-Sendfile goes to the client as any header.
	SendfilePaths []string

	// Logger receives the connection and protocol errors (at error) and
	// the scripts' stderr lines (at warn); nil means slog.Default().
	Logger *slog.Logger
}

// Handler is an http.Handler that runs the scripts below a document root
// on a FastCGI server in the responder role, as nginx's fastcgi_pass and
// mod_fcgid do. The package documentation tells how a request finds its
// script and how the answer goes back.
type Handler struct {
	root     string
	index    []string
	exts     []string
	static   http.Handler
	front    string
	params   []Param
	software string
	maxHead  int
	maxBody  int64
	bufBody  int64
	respBuf  int64
	respFile int64
	tempDir  string
	addr     string
	log      *slog.Logger
	client   *Client
	sendfile *gateway.Sendfile
}

var _ http.Handler = (*Handler)(nil)

// New returns a Handler for opts. It fails when opts names no document
// root or no server, not when the server is down: requests then get 503.
func New(opts Options) (*Handler, error) {
	if opts.Root == "" {
		return nil, errors.New("fastcgi: no document root")
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("fastcgi: document root: %w", err)
	}
	h := &Handler{
		root:     root,
		index:    opts.Index,
		exts:     opts.Extensions,
		static:   opts.Static,
		front:    opts.FrontController,
		params:   opts.Params,
		software: opts.Software,
		maxHead:  opts.MaxHeaderBytes,
		maxBody:  opts.MaxBufferedBody,
		bufBody:  opts.BufferBody,
		respBuf:  opts.ResponseBuffer,
		respFile: max(opts.MaxTempFileSize, 0),
		tempDir:  opts.TempDir,
		addr:     opts.Network + ":" + opts.Address,
		log:      opts.Logger,
		sendfile: gateway.NewSendfile(opts.SendfilePaths),
	}
	if h.index == nil {
		h.index = []string{"index.php"}
	}
	for _, name := range h.index {
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
			return nil, fmt.Errorf("fastcgi: index file name %q is not one file name", name)
		}
	}
	if h.exts == nil {
		h.exts = []string{".php"}
	}
	if h.front != "" && !strings.HasPrefix(h.front, "/") {
		return nil, fmt.Errorf("fastcgi: front controller %q is not a URL path", h.front)
	}
	if h.software == "" {
		h.software = "phased"
	}
	if h.maxHead <= 0 {
		h.maxHead = DefaultMaxHeaderBytes
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBufferedBody
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	dial := opts.Dial
	if dial == nil {
		if opts.Network == "" || opts.Address == "" {
			return nil, errors.New("fastcgi: no server address")
		}
		d := net.Dialer{Timeout: timeout(opts.ConnectTimeout, DefaultConnectTimeout)}
		dial = func(ctx context.Context) (net.Conn, error) {
			return d.DialContext(ctx, opts.Network, opts.Address)
		}
	} else if ct := timeout(opts.ConnectTimeout, DefaultConnectTimeout); ct > 0 {
		custom := dial
		dial = func(ctx context.Context) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, ct)
			defer cancel()
			return custom(ctx)
		}
	}
	h.client = &Client{
		Dial:         dial,
		KeepConn:     opts.KeepConn,
		MaxIdleConns: opts.MaxIdleConns,
		IdleTimeout:  opts.IdleTimeout,
		ReadTimeout:  opts.ReadTimeout,
		SendTimeout:  opts.SendTimeout,
	}
	return h, nil
}

// Client returns the FastCGI client the handler sends requests with.
func (h *Handler) Client() *Client { return h.client }

// Close closes the idle connections to the FastCGI server.
func (h *Handler) Close() error { return h.client.Close() }

// ServeHTTP finds the script that r names and runs it, or hands r to
// Options.Static.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	root, err := gateway.OpenRoot(h.root)
	if err != nil {
		h.other(w, r) // no document root yet: Static has a page for that
		return
	}
	p := r.URL.Path
	f, err := root.Find(p)
	switch {
	case errors.Is(err, gateway.ErrNotFound):
		if h.namesScript(p) {
			gateway.Error(w, http.StatusNotFound)
			return
		}
		h.fallback(w, r, root)
	case errors.Is(err, gateway.ErrForbidden):
		gateway.Error(w, http.StatusForbidden)
	case err != nil:
		h.log.Error("fastcgi: looking up the script", "err", err, "path", p)
		gateway.Error(w, http.StatusInternalServerError)
	case f.Info.IsDir():
		h.serveDir(w, r, root, p)
	case h.isSource(path.Base(f.Name)) || h.isSource(filepath.Base(f.File)):
		gateway.Error(w, http.StatusForbidden)
	case !h.isScript(f.Name):
		h.other(w, r)
	default:
		h.serveFound(w, r, root, f)
	}
}

// serveDir serves folder p with its first index file.
func (h *Handler) serveDir(w http.ResponseWriter, r *http.Request, root gateway.Root, p string) {
	if !strings.HasSuffix(p, "/") {
		if h.static != nil {
			h.static.ServeHTTP(w, r) // which redirects to the slash form
			return
		}
		esc := r.URL.EscapedPath()
		loc := "./" + esc[strings.LastIndexByte(esc, '/')+1:] + "/"
		if r.URL.RawQuery != "" {
			loc += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, loc, http.StatusMovedPermanently)
		return
	}
	for _, idx := range h.index {
		f, err := root.Find(p + idx)
		switch {
		case errors.Is(err, gateway.ErrNotFound):
			continue
		case errors.Is(err, gateway.ErrForbidden):
			gateway.Error(w, http.StatusForbidden)
			return
		case err != nil:
			h.log.Error("fastcgi: looking up the index", "err", err, "path", p+idx)
			gateway.Error(w, http.StatusInternalServerError)
			return
		case f.Info.IsDir():
			continue
		case !h.isScript(idx):
			h.other(w, r)
			return
		}
		h.serveFound(w, r, root, f)
		return
	}
	h.other(w, r)
}

// fallback serves a request for a path that names nothing: with the front
// controller if there is one, else as Static would.
func (h *Handler) fallback(w http.ResponseWriter, r *http.Request, root gateway.Root) {
	if h.front == "" {
		h.other(w, r)
		return
	}
	f, err := root.Find(h.front)
	if err != nil || f.PathInfo != "" || f.Info.IsDir() || !h.isScript(f.Name) {
		h.log.Error("fastcgi: the front controller is no script", "script", h.front, "err", err)
		gateway.Error(w, http.StatusInternalServerError)
		return
	}
	h.serveFound(w, r, root, f)
}

// other hands r to Static, or answers 404 without it.
func (h *Handler) other(w http.ResponseWriter, r *http.Request) {
	if h.static != nil {
		h.static.ServeHTTP(w, r)
		return
	}
	gateway.Error(w, http.StatusNotFound)
}

// isScript reports whether file name has a script extension.
func (h *Handler) isScript(name string) bool {
	for _, ext := range h.exts {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// phpSources are the names ending PHP source that is not run when .php is
// the script extension: other extensions PHP files are given, and include
// files.
var phpSources = []string{".phtml", ".pht", ".phps", ".phar", ".inc"}

// isSource reports whether file name is source that must not be served as
// a static file: PHP's per-folder settings (.user.ini, which php-cgi and
// php-fpm read), a copy of a script whose name goes on after the script
// extension with anything but a letter ("wp-config.php.bak",
// "index.php~", "index.php5", ".index.php.swp"), and, when .php is a
// script extension, PHP's other source extensions (phpSources).
func (h *Handler) isSource(name string) bool {
	lower := strings.ToLower(name)
	if lower == ".user.ini" {
		return true
	}
	for _, ext := range h.exts {
		ext = strings.ToLower(ext)
		for i := 0; ; {
			j := strings.Index(lower[i:], ext)
			if j < 0 {
				break
			}
			i += j + len(ext)
			if i < len(lower) && !isLetter(lower[i]) {
				return true
			}
		}
		if ext == ".php" {
			for _, src := range phpSources {
				if strings.HasSuffix(lower, src) {
					return true
				}
			}
		}
	}
	return false
}

// isLetter reports whether b is an ASCII lowercase letter.
func isLetter(b byte) bool { return 'a' <= b && b <= 'z' }

// namesScript reports whether some segment of URL path p ends in a script
// extension, as nginx's location ~ [^/]\.php(/|$) would match it.
func (h *Handler) namesScript(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if h.isScript(seg) {
			return true
		}
	}
	return false
}

// serveFound runs script f, which the caller found to be a script.
func (h *Handler) serveFound(w http.ResponseWriter, r *http.Request, root gateway.Root, f gateway.Found) {
	if !f.Info.Mode().IsRegular() {
		gateway.Error(w, http.StatusForbidden)
		return
	}
	body, ok := gateway.RequestBody(w, r, h.maxBody, h.bufBody, h.tempDir)
	if !ok {
		return
	}
	defer body.Close()

	params := make([]Param, 0, 32+len(r.Header)+len(h.params))
	s := gateway.Script{Name: f.Name, Filename: f.File, PathInfo: f.PathInfo, DocumentRoot: root.Real, Software: h.software}
	gateway.Vars(r, s, body.Length, func(name, value string) {
		params = append(params, Param{Name: name, Value: value})
	})
	// php-cgi built with --enable-force-cgi-redirect runs nothing without it.
	params = append(params, Param{Name: "REDIRECT_STATUS", Value: "200"})
	if h.sendfile != nil {
		params = append(params, Param{Name: "HTTP_X_SENDFILE_TYPE", Value: gateway.SendfileType})
	}
	params = append(params, h.params...)

	log := h.log.With("script", f.Name)
	stderr := gateway.NewLineLog(log, "fastcgi stderr")
	defer stderr.Close()
	req := &Request{Params: params, Stderr: stderr}
	if body.Length > 0 {
		req.Stdin = body
	}
	resp, err := h.client.Do(r.Context(), req)
	if err != nil {
		h.fail(w, r, log, err)
		return
	}
	defer resp.Close()
	hd, rest, err := readHead(resp, h.maxHead)
	if err != nil {
		h.fail(w, r, log, err)
		return
	}
	if h.sendfile.Wanted(hd.status, hd.header) {
		// What the script wrote after its headers is not sent; read to
		// its end (a little, bounded) so the connection can be kept.
		io.Copy(io.Discard, io.LimitReader(resp, 64<<10))
		resp.Close()
		h.sendfile.Serve(w, r, hd.status, hd.header, log)
		return
	}
	hdr := w.Header()
	for k, vv := range hd.header {
		hdr[k] = vv
	}
	w.WriteHeader(hd.status)
	var out source = resp
	if h.respBuf > 0 {
		// What came with the head is read now, on this goroutine: a small
		// answer is often whole already, and needs no reader of its own.
		st := spool.Store{Dir: h.tempDir, MemMax: h.respBuf}
		if whole := readAtHand(resp, &st); whole {
			defer st.Close()
			out = held{spool.NewReader(&st)}
		} else {
			ra := &ahead{resp: resp}
			ra.ReadAhead = spool.NewReadAhead(ra.source(), st, h.respBuf+h.respFile)
			defer ra.ReadAhead.Close()
			out = ra
		}
	}
	h.stream(w, r, log, out, rest)
}

// readAtHand reads into st what of resp is at hand already, up to st's
// memory, and reports whether that was all of it (the request ended).
// After an error it stops: the next Read of resp returns it again.
func readAtHand(resp *Response, st *spool.Store) bool {
	buf := spool.Buffers.Get()
	defer spool.Buffers.Put(buf)
	for resp.buffered() && st.Size() < st.MemMax {
		n, err := resp.Read(buf[:min(int64(len(buf)), st.MemMax-st.Size())])
		st.Write(buf[:n]) // memory only: within MemMax
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
	return false
}

// held is an answer read whole, as stream's source.
type held struct{ *spool.Reader }

func (held) buffered() bool { return true }

// source is what stream copies: a Response, or one read ahead.
type source interface {
	io.ReadCloser
	buffered() bool
}

// ahead is a Response that spool.ReadAhead reads in a goroutine of its
// own (its Read and Close, as the ReadAhead's source), while the client
// reads what came (Read and Close from spool.ReadAhead, buffered).
type ahead struct {
	*spool.ReadAhead
	resp  *Response
	mu    sync.Mutex // the Response's Read and Close, one at a time
	ended atomic.Bool
}

func (a *ahead) buffered() bool { return a.ReadAhead.Buffered() }

// Read and Close are the ReadAhead's source: the Response.
func (a *ahead) source() io.ReadCloser { return aheadSource{a} }

type aheadSource struct{ a *ahead }

func (s aheadSource) Read(p []byte) (int, error) {
	s.a.mu.Lock()
	defer s.a.mu.Unlock()
	n, err := s.a.resp.Read(p)
	if err != nil {
		s.a.ended.Store(true)
	}
	return n, err
}

// Close may come while a Read waits (the client went away): closing the
// socket ends that Read first. A response read to its end keeps its
// connection (KeepConn).
func (s aheadSource) Close() error {
	if !s.a.ended.Load() {
		s.a.resp.cn.nc.Close()
	}
	s.a.mu.Lock()
	defer s.a.mu.Unlock()
	return s.a.resp.Close()
}

// stream copies the response body to the client, flushing whenever what
// came is written and nothing more is at hand. A response cut short by the
// server cuts the client's connection, so that the client cannot take the
// truncated body for a whole one.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, log *slog.Logger, resp source, first []byte) {
	rc := http.NewResponseController(w)
	if len(first) > 0 {
		if _, err := w.Write(first); err != nil {
			return // the client is gone
		}
	}
	buf := spool.Buffers.Get()
	defer spool.Buffers.Put(buf)
	for {
		if !resp.buffered() {
			rc.Flush()
		}
		n, err := resp.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			if r.Context().Err() == nil {
				log.Error("fastcgi: response cut short", "addr", h.addr, "err", err)
			}
			resp.Close()
			panic(http.ErrAbortHandler)
		}
	}
}

// fail answers a request whose response could not be had, with 503 when
// the server is not there or overloaded, 504 when it timed out, and 502
// for anything else, and logs why.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code := http.StatusBadGateway
	switch {
	case r.Context().Err() != nil:
		// The client is gone: nothing to log, no one to answer.
	case errors.Is(err, ErrConnect):
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.EAGAIN) {
			code = http.StatusServiceUnavailable
		}
		log.Error("fastcgi: cannot connect", "addr", h.addr, "err", err)
	case errors.Is(err, ErrOverloaded):
		code = http.StatusServiceUnavailable
		log.Error("fastcgi: server overloaded", "addr", h.addr, "err", err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		code = http.StatusGatewayTimeout
		log.Error("fastcgi: server timed out", "addr", h.addr, "read_timeout", timeout(h.client.ReadTimeout, DefaultReadTimeout).String(), "err", err)
	default:
		log.Error("fastcgi: bad response", "addr", h.addr, "err", err)
	}
	gateway.Error(w, code)
}
