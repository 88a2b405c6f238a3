package fastcgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/fcgi"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/core/child/internal/testkit"
)

// serve returns a handler for opts behind a real HTTP server, both closed
// at the test's end.
func serve(t testing.TB, opts Options) (*Handler, *httptest.Server) {
	t.Helper()
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		h.Close()
	})
	return h, srv
}

// staticStub stands for the child's static file handler.
var staticStub = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "static %s", r.URL.Path)
})

// TestResolve: which requests reach the FastCGI server, with which script,
// and which are answered before.
func TestResolve(t *testing.T) {
	root := testkit.Site(t)
	s := newFakeServer(t, answer(stdout("Content-Type: text/plain\r\n\r\nscript")))
	tests := []struct {
		path       string
		front      string
		noStatic   bool
		code       int
		script     string // SCRIPT_NAME, when the server is to be reached
		pathInfo   string
		body       string // when it is not
		location   string
		scriptFile string // SCRIPT_FILENAME relative to root; "" for script
	}{
		{path: "/index.php/foo/bar?x=1", script: "/index.php", pathInfo: "/foo/bar"},
		{path: "/index.php?x=1", script: "/index.php"},
		{path: "/index.php/", script: "/index.php", pathInfo: "/"},
		{path: "/", script: "/index.php"},
		{path: "/app/", script: "/app/index.php"},
		{path: "/app/?q", script: "/app/index.php"},
		{path: "/dir.php/", script: "/dir.php/index.php"},
		{path: "/a/b/c.php/x.php", script: "/a/b/c.php", pathInfo: "/x.php"},
		{path: "/link-in.php", script: "/link-in.php", scriptFile: "index.php"},
		{path: "/app", code: 200, body: "static /app"},
		{path: "/app?x=1", noStatic: true, code: 301, location: "/app/?x=1"},
		{path: "/sub/", code: 200, body: "static /sub/"},
		{path: "/sub/", noStatic: true, code: 404},
		{path: "/img.png", code: 200, body: "static /img.png"},
		{path: "/img.png/x.php", code: 200, body: "static /img.png/x.php"},
		{path: "/index.PHP", code: 200, body: "static /index.PHP"},
		{path: "/page.html", noStatic: true, code: 404},
		{path: "/missing", code: 200, body: "static /missing"},
		{path: "/missing.php", code: 404},
		{path: "/missing.php/x", code: 404},
		{path: "/nodir/x.php/y", code: 404},
		{path: "/fifo.php", code: 403},
		{path: "/link-out.php", code: 404},
		{path: "/dir-out/secret.php", code: 404},
		{path: "/dir-out/sub/another.php/x", code: 404},
		{path: "/../outside/secret.php", code: 404},
		{path: "/a/../index.php", code: 404},
		{path: "/index.php/../../outside/secret.php", code: 404},
		{path: "/index.php%00.png", code: 200, body: "static /index.php\x00.png"},
		// With a front controller, what names nothing goes to it.
		{path: "/users/5?tab=1", front: "/index.php", script: "/index.php"},
		{path: "/missing.php", front: "/index.php", code: 404},
		{path: "/img.png", front: "/index.php", code: 200, body: "static /img.png"},
		{path: "/sub/", front: "/index.php", code: 200, body: "static /sub/"},
		{path: "/users/5", front: "/gone.php", code: 500},
	}
	for _, tc := range tests {
		t.Run(tc.path+" "+tc.front, func(t *testing.T) {
			log, _ := testkit.New()
			opts := Options{Network: "unix", Address: s.addr, Root: root, Static: staticStub, FrontController: tc.front, Logger: log}
			if tc.noStatic {
				opts.Static = nil
			}
			h, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			before, _ := s.requests()
			r := httptest.NewRequest("GET", "http://example.org"+tc.path, nil)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			after, _ := s.requests()
			if tc.script == "" {
				if after != before {
					t.Fatalf("forwarded to the server as %q", s.last().params["SCRIPT_NAME"])
				}
				if w.Code != tc.code || tc.body != "" && w.Body.String() != tc.body || w.Header().Get("Location") != tc.location {
					t.Fatalf("%d %q (Location %q), want %d %q (%q)", w.Code, w.Body, w.Header().Get("Location"), tc.code, tc.body, tc.location)
				}
				return
			}
			if after != before+1 || w.Code != 200 || w.Body.String() != "script" {
				t.Fatalf("not forwarded: %d %q", w.Code, w.Body)
			}
			p := s.last().params
			file := tc.scriptFile
			if file == "" {
				file = tc.script[1:]
			}
			want := map[string]string{
				"SCRIPT_NAME":     tc.script,
				"SCRIPT_FILENAME": filepath.Join(root, file),
				"PATH_INFO":       tc.pathInfo,
				"DOCUMENT_ROOT":   root,
				"REQUEST_URI":     tc.path,
				"QUERY_STRING":    r.URL.RawQuery,
			}
			if tc.pathInfo != "" {
				want["PATH_TRANSLATED"] = root + tc.pathInfo
			}
			for k, v := range want {
				if p[k] != v {
					t.Errorf("%s = %q, want %q", k, p[k], v)
				}
			}
		})
	}
}

// TestSourceNotServed: the files that hold PHP source or settings but are
// not scripts (.user.ini, a script's backup copies, PHP's other source
// extensions) are 403, never handed to the static handler to be sent as
// they are; look-alikes that are not source are served.
func TestSourceNotServed(t *testing.T) {
	root := testkit.Site(t)
	testkit.Tree(t, root, map[string]string{
		".user.ini": "display_errors=On", "sub/.USER.INI": "x", "config.php.bak": "<?php", "index.php~": "<?php",
		".index.php.swp": "<?php", "old.php5": "<?php", "view.phtml": "<?php", "lib.inc": "<?php", "src.phps": "<?php",
		"app.phar": "<?php", "CONFIG.PHP.OLD": "<?php", "link.txt": "symlink:config.php.bak",
		"phpinfo.txt": "text", "my.photo.png": "png", "notes.php.txt/x": "a folder", "user.ini": "not PHP's",
	})
	s := newFakeServer(t, answer(stdout("Content-Type: text/plain\r\n\r\nscript")))
	h, srv := serve(t, Options{Network: "unix", Address: s.addr, Root: root, Static: staticStub})
	for path, want := range map[string]int{
		"/.user.ini": 403, "/sub/.USER.INI": 403, "/config.php.bak": 403, "/index.php~": 403, "/.index.php.swp": 403,
		"/old.php5": 403, "/view.phtml": 403, "/lib.inc": 403, "/src.phps": 403, "/app.phar": 403, "/CONFIG.PHP.OLD": 403,
		"/link.txt": 403, "/config.php.bak/x": 403,
		"/phpinfo.txt": 200, "/my.photo.png": 200, "/user.ini": 200, "/img.png": 200,
	} {
		code, body, _ := get(t, srv.URL+path)
		if code != want || (want == 200 && body != "static "+path) {
			t.Errorf("GET %s = %d %q, want %d", path, code, body, want)
		}
	}
	if n, _ := s.requests(); n != 0 {
		t.Errorf("%d requests reached the FastCGI server", n)
	}
	// With other script extensions, PHP's own are files like any other.
	h.Close()
	_, srv = serve(t, Options{Network: "unix", Address: s.addr, Root: root, Static: staticStub, Extensions: []string{".cgi"}})
	for _, path := range []string{"/view.phtml", "/lib.inc", "/config.php.bak"} {
		if code, _, _ := get(t, srv.URL+path); code != 200 {
			t.Errorf("with extensions [.cgi], GET %s = %d, want 200", path, code)
		}
	}
}

// TestParams: the params of a request, beyond the script's.
func TestParams(t *testing.T) {
	root := testkit.Site(t)
	s := newFakeServer(t, answer(okResponse))
	h, err := New(Options{Network: "unix", Address: s.addr, Root: root,
		Params: []Param{{"APP_ENV", "test"}, {"SERVER_SOFTWARE", "custom"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	srv := httptest.NewTLSServer(h)
	defer srv.Close()

	// A chunked body: its length is learned before the request is sent.
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("a=1&"))
		pw.Write([]byte("b=2"))
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", srv.URL+"/index.php?q=1", pr)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Proxy", "http://evil")
	req.Header.Set("X-Custom", "yes")
	req.Header["X_Custom"] = []string{"smuggled"}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := s.last()
	if string(got.stdin) != "a=1&b=2" {
		t.Fatalf("stdin %q", got.stdin)
	}
	for k, v := range map[string]string{
		"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "7", "CONTENT_TYPE": "application/x-www-form-urlencoded",
		"HTTPS": "on", "REQUEST_SCHEME": "https", "REDIRECT_STATUS": "200", "APP_ENV": "test",
		"SERVER_SOFTWARE": "custom", "HTTP_X_CUSTOM": "yes", "SERVER_ADDR": "127.0.0.1",
		"GATEWAY_INTERFACE": "CGI/1.1", "QUERY_STRING": "q=1",
	} {
		if got.params[k] != v {
			t.Errorf("%s = %q, want %q", k, got.params[k], v)
		}
	}
	if _, ok := got.params["HTTP_PROXY"]; ok {
		t.Error("HTTP_PROXY passed")
	}
}

// TestResponses: what the client gets for what the FastCGI server does,
// through a real HTTP server so that a cut connection shows.
func TestResponses(t *testing.T) {
	root := testkit.Site(t)
	big := strings.Repeat("X-Big: "+strings.Repeat("b", 100)+"\r\n", 700) // 75 KB
	tests := []struct {
		name    string
		respond func(net.Conn, *fakeRequest) bool
		code    int
		body    string
		header  string // "Name: value" wanted
		cut     bool   // the client sees the connection cut mid-body
		logMsg  string
	}{
		{name: "ok", respond: answer(okResponse), code: 200, body: "hello", header: "X-App: 1"},
		{name: "status", respond: answer(stdout("Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno such user")), code: 404, body: "no such user"},
		{name: "local redirect", respond: answer(stdout("Location: /login\r\n\r\n")), code: 302, header: "Location: /login"},
		{name: "client redirect with document", respond: answer(stdout("Status: 303 See Other\r\nLocation: https://example.org/\r\nContent-Type: text/html\r\n\r\n<a>")), code: 303, body: "<a>", header: "Location: https://example.org/"},
		{name: "no content", respond: answer(stdout("Status: 204\r\n\r\n")), code: 204},
		{name: "stderr stays out", respond: answer(append(rec(typeStderr, "PHP Warning: x\n"), okResponse...)), code: 200, body: "hello", logMsg: "fastcgi stderr"},
		{name: "header too large", respond: answer(stdout(big + "\r\nbody")), code: 502, logMsg: "fastcgi: bad response"},
		{name: "garbage", respond: answer([]byte("<html>not fastcgi</html>")), code: 502, logMsg: "fastcgi: bad response"},
		{name: "bad header", respond: answer(stdout("this is no header\r\n\r\n")), code: 502, logMsg: "fastcgi: bad response"},
		{name: "dies before headers", respond: func(c net.Conn, _ *fakeRequest) bool {
			c.Write(rec(typeStdout, "Content-Type: te"))
			return false
		}, code: 502, logMsg: "fastcgi: bad response"},
		{name: "dies mid-body", respond: func(c net.Conn, _ *fakeRequest) bool {
			c.Write(rec(typeStdout, "Content-Type: text/plain\r\n\r\nfirst part"))
			return false
		}, code: 200, cut: true, logMsg: "fastcgi: response cut short"},
		{name: "dies mid-record", respond: func(c net.Conn, _ *fakeRequest) bool {
			c.Write([]byte{1, typeStdout, 0, 1, 1, 0, 0, 0})
			c.Write([]byte("Content-Type: text/plain\r\n\r\nthe record says 256 bytes"))
			return false
		}, code: 200, cut: true, logMsg: "fastcgi: response cut short"},
		{name: "overloaded", respond: answer(endRequest(0, statusOverloaded)), code: 503, logMsg: "fastcgi: server overloaded"},
		{name: "too slow", respond: func(c net.Conn, _ *fakeRequest) bool {
			c.Read(make([]byte, 1)) // until the client gives up
			return false
		}, code: 504, logMsg: "fastcgi: server timed out"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeServer(t, tc.respond)
			log, rec := testkit.New()
			_, srv := serve(t, Options{Network: "unix", Address: s.addr, Root: root, Logger: log, ReadTimeout: 100 * time.Millisecond})
			resp, err := noRedirects.Get(srv.URL + "/index.php")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tc.cut != (err != nil) {
				t.Fatalf("read error %v, want a cut connection: %v", err, tc.cut)
			}
			if resp.StatusCode != tc.code || !tc.cut && tc.body != "" && string(body) != tc.body {
				t.Fatalf("%d %q, want %d %q", resp.StatusCode, body, tc.code, tc.body)
			}
			if tc.header != "" {
				k, v, _ := strings.Cut(tc.header, ": ")
				if resp.Header.Get(k) != v {
					t.Fatalf("%s: %q, want %q", k, resp.Header.Get(k), v)
				}
			}
			if strings.Contains(string(body), "PHP Warning") {
				t.Fatal("stderr in the response")
			}
			if tc.logMsg != "" {
				got := rec.Find(tc.logMsg)
				if len(got) != 1 || got[0].Attrs["script"] != "/index.php" {
					t.Fatalf("log: %s", rec)
				}
				if got[0].Level >= 8 && got[0].Attrs["addr"] != "unix:"+s.addr {
					t.Fatalf("log without the address: %s", rec)
				}
			}
		})
	}
}

// noRedirects is an HTTP client that returns redirects as they are.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// TestConnectErrors: a server that is not there is 503 when the socket
// refuses or is missing, 502 when connecting times out; each logged once,
// with the address.
func TestConnectErrors(t *testing.T) {
	root := testkit.Site(t)
	dir := t.TempDir()
	// A unix socket file with no one listening.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	// A TCP port on the loopback with no one listening.
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := tl.Addr().String()
	tl.Close()

	hang := func(ctx context.Context) (net.Conn, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	for _, tc := range []struct {
		name             string
		network, address string
		dial             func(context.Context) (net.Conn, error)
		code             int
	}{
		{name: "refused unix", network: "unix", address: stale, code: 503},
		{name: "missing unix", network: "unix", address: filepath.Join(dir, "missing.sock"), code: 503},
		{name: "refused tcp", network: "tcp", address: closedPort, code: 503},
		{name: "timeout", network: "unix", address: "hang", dial: hang, code: 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, rec := testkit.New()
			h, err := New(Options{Network: tc.network, Address: tc.address, Dial: tc.dial, Root: root, Logger: log, ConnectTimeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/index.php", nil))
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d", w.Code, tc.code)
			}
			got := rec.Find("fastcgi: cannot connect")
			if len(got) != 1 || got[0].Attrs["addr"] != tc.network+":"+tc.address || got[0].Attrs["err"] == "" {
				t.Fatalf("log: %s", rec)
			}
		})
	}
}

// TestStdlibServer: requests through the handler to Go's own FastCGI
// server, an implementation written apart from this client, with and
// without kept connections.
func TestStdlibServer(t *testing.T) {
	root := testkit.Site(t)
	addr := testkit.ServeUnix(t, "go.sock", func(ln net.Listener) {
		fcgi.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Method", r.Method)
			fmt.Fprintf(w, "%s %s %d %s %s", r.URL.Path, r.URL.RawQuery, len(body), r.Header.Get("X-Test"), fcgi.ProcessEnv(r)["SCRIPT_FILENAME"])
		}))
	})
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep %v", keep), func(t *testing.T) {
			h, srv := serve(t, Options{Network: "unix", Address: addr, Root: root, KeepConn: keep})
			for i := range 5 {
				body := strings.Repeat("z", i*50000)
				req, _ := http.NewRequest("PUT", srv.URL+"/app/index.php/more?i="+fmt.Sprint(i), strings.NewReader(body))
				req.Header.Set("X-Test", "t")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := fmt.Sprintf("/app/index.php/more i=%d %d t %s", i, len(body), filepath.Join(root, "app/index.php"))
				if resp.StatusCode != 200 || string(got) != want || resp.Header.Get("X-Method") != "PUT" {
					t.Fatalf("%d %q, want %q", resp.StatusCode, got, want)
				}
			}
			if n := idleCount(h.Client()); keep != (n == 1) {
				t.Fatalf("%d idle connections", n)
			}
		})
	}
}

// TestFlushes: each piece of the body reaches the client before the next
// is written by the server.
func TestFlushes(t *testing.T) {
	for _, ahead := range []int64{0, 1 << 20} {
		t.Run(fmt.Sprintf("ResponseBuffer=%d", ahead), func(t *testing.T) {
			root := testkit.Site(t)
			next := make(chan struct{})
			s := newFakeServer(t, func(c net.Conn, _ *fakeRequest) bool {
				c.Write(rec(typeStdout, "Content-Type: text/plain\r\n\r\n"))
				for i := range 3 {
					c.Write(rec(typeStdout, fmt.Sprintf("piece %d\n", i)))
					select {
					case <-next:
					case <-time.After(5 * time.Second):
						return false
					}
				}
				c.Write(stdout(""))
				return true
			})
			_, srv := serve(t, Options{Network: "unix", Address: s.addr, Root: root, ResponseBuffer: ahead, TempDir: t.TempDir()})
			resp, err := http.Get(srv.URL + "/index.php")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			testkit.ReadTicks(t, resp.Body, "piece %d\n", 3, func(int) { next <- struct{}{} })
		})
	}
}

// TestResponseReadAhead: with ResponseBuffer, a response is read from the
// FastCGI server as fast as it sends it, into memory and then a temporary
// file, so that a client that reads nothing yet holds no worker: the
// server has written the whole response, and ended the request, before
// the client reads a byte of the body, which then comes whole. Without
// it, the server would wait for the client, its writes stuck once the
// sockets' buffers are full.
func TestResponseReadAhead(t *testing.T) {
	root := testkit.Site(t)
	const size = 8 << 20
	answered := make(chan error, 1)
	s := newFakeServer(t, func(c net.Conn, _ *fakeRequest) bool {
		c.SetWriteDeadline(time.Now().Add(20 * time.Second))
		body := strings.Repeat("0123456789abcdef", size/16)
		_, err := c.Write(stdout("Content-Type: text/plain\r\n\r\n" + body))
		answered <- err
		return false
	})
	tmp := t.TempDir()
	_, srv := serve(t, Options{Network: "unix", Address: s.addr, Root: root, ResponseBuffer: 1 << 20, MaxTempFileSize: 1 << 30, TempDir: tmp})
	resp, err := http.Get(srv.URL + "/index.php")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("the server could not write its answer: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the FastCGI server is still writing its answer, held by a client that reads nothing yet")
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != size || !strings.HasPrefix(string(b), "0123456789abcdef") || !strings.HasSuffix(string(b), "0123456789abcdef") {
		t.Fatalf("body of %d bytes, want %d", len(b), size)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

// TestResponseWholeAtHand: with ResponseBuffer, an answer that came whole
// with its head (the usual small page) is taken at once and served whole,
// its trailing bytes and status intact.
func TestResponseWholeAtHand(t *testing.T) {
	root := testkit.Site(t)
	s := newFakeServer(t, answer(stdout("Status: 201 Created\r\nContent-Type: text/plain\r\n\r\nhello, whole")))
	_, srv := serve(t, Options{Network: "unix", Address: s.addr, Root: root, ResponseBuffer: 1 << 20, TempDir: t.TempDir()})
	for range 3 {
		resp, err := http.Get(srv.URL + "/index.php")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 201 || string(b) != "hello, whole" {
			t.Fatalf("%d %q %v", resp.StatusCode, b, err)
		}
	}
}

// TestClientGone: a client that leaves mid-response closes the connection
// to the FastCGI server, which sees its writes fail.
func TestClientGone(t *testing.T) {
	root := testkit.Site(t)
	failed := make(chan error, 1)
	s := newFakeServer(t, func(c net.Conn, _ *fakeRequest) bool {
		c.Write(rec(typeStdout, "Content-Type: text/plain\r\n\r\n"))
		chunk := rec(typeStdout, strings.Repeat("x", 60000))
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := c.Write(chunk); err != nil {
				failed <- err
				return false
			}
		}
		failed <- errors.New("the client's leaving went unnoticed")
		return false
	})
	_, srv := serve(t, Options{Network: "unix", Address: s.addr, Root: root, KeepConn: true})
	resp, err := http.Get(srv.URL + "/index.php")
	if err != nil {
		t.Fatal(err)
	}
	io.CopyN(io.Discard, resp.Body, 100000)
	resp.Body.Close()
	if err := <-failed; !errors.Is(err, os.ErrClosed) && !strings.Contains(err.Error(), "broken pipe") && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("server: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	for _, opts := range []Options{
		{Network: "unix", Address: "/x"},
		{Root: "/srv"},
		{Root: "/srv", Network: "unix", Address: "/x", Index: []string{"../x.php"}},
		{Root: "/srv", Network: "unix", Address: "/x", FrontController: "index.php"},
	} {
		if _, err := New(opts); err == nil {
			t.Errorf("New(%+v) did not fail", opts)
		}
	}
}

// TestBufferBody: with BufferBody a request reaches the FastCGI server
// only once its whole body is in, so a client sending slowly holds no
// worker; without it, the body is streamed as it comes (the baseline: the
// server is connected to before the body is in). The part of the body
// past BufferBody waits in an unlinked file of TempDir, and a body over
// MaxBufferedBody is 413 whatever its length.
func TestBufferBody(t *testing.T) {
	root := testkit.Site(t)
	s := newFakeServer(t, answer(stdout("Content-Type: text/plain\r\n\r\nscript")))
	tmp := t.TempDir()
	for _, buffer := range []int64{0, 4} {
		_, srv := serve(t, Options{Network: "unix", Address: s.addr, Root: root, BufferBody: buffer, TempDir: tmp, MaxBufferedBody: 16})
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		_, before := s.requests()
		fmt.Fprintf(c, "POST /index.php HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
		if buffer == 0 {
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				if _, conns := s.requests(); conns > before {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("streaming: the server was not connected to while the body came")
				}
			}
		} else {
			time.Sleep(300 * time.Millisecond)
			if _, conns := s.requests(); conns != before {
				t.Fatal("BufferBody: the server was connected to before the body was in")
			}
		}
		fmt.Fprintf(c, "world")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "script" || string(s.last().stdin) != "helloworld" {
			t.Fatalf("BufferBody %d: %d %q, the server read %q", buffer, resp.StatusCode, b, s.last().stdin)
		}
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("left in TempDir: %v", ents)
	}
	_, srv := serve(t, Options{Network: "unix", Address: s.addr, Root: root, BufferBody: 4, MaxBufferedBody: 16})
	resp, err := http.Post(srv.URL+"/index.php", "text/plain", strings.NewReader("seventeen bytes!!"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("a body over MaxBufferedBody with BufferBody: %d, want 413", resp.StatusCode)
	}
}
