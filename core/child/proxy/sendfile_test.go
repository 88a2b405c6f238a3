package proxy

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phasedhq/phased/core/child/internal/gateway"
)

// TestSendfile: with SendfilePaths, an answer whose X-Sendfile names a file
// below them is answered with that file, the app's status and headers kept
// (X-Sendfile itself dropped), a Range of it as 206, through the fast path
// (a GET it forwards, which leaves the answer to net/http) and net/http's;
// a file outside them, reached through a symlink out, a folder or a missing
// file is 403 or 404 and logged. The app is told it may
// (X-Sendfile-Type), and never by the client. Without SendfilePaths the
// header passes through as any other.
func TestSendfile(t *testing.T) {
	dir := t.TempDir()
	files := filepath.Join(dir, "files")
	secret := filepath.Join(dir, "secret.txt")
	os.MkdirAll(files, 0o755)
	os.WriteFile(filepath.Join(files, "report.pdf"), []byte("0123456789abcdef"), 0o644)
	os.WriteFile(secret, []byte("SECRET"), 0o644)
	os.Symlink(secret, filepath.Join(files, "link-out"))
	var seen sync.Map // what X-Sendfile-Type each path arrived with
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.URL.Path, r.Header.Get("X-Sendfile-Type"))
		name := r.URL.Query().Get("file")
		w.Header().Set("Content-Type", "application/pdf")
		w.Header().Set("Content-Disposition", `attachment; filename="report.pdf"`)
		w.Header().Set("X-Sendfile", name)
		if r.URL.Query().Get("status") == "404" {
			w.WriteHeader(http.StatusNotFound)
		}
	})
	p, _ := testApp(t, app, time.Minute)
	var logs strings.Builder
	var logMu sync.Mutex
	p.o.Log = slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))
	p.sendfile = gateway.NewSendfile([]string{files})

	serve := func(target string, header ...string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequest("GET", "http://127.0.0.1"+target, nil)
		req.RemoteAddr = "127.0.0.1:1234"
		req.Header.Set("X-Sendfile-Type", "X-Accel-Redirect") // the client's: never passed on
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		w := httptest.NewRecorder()
		p.ServeHTTP(w, req)
		return w
	}
	report := filepath.Join(files, "report.pdf")
	w := serve("/download?file=" + report)
	if w.Code != 200 || w.Body.String() != "0123456789abcdef" || w.Header().Get("Content-Type") != "application/pdf" ||
		w.Header().Get("Content-Disposition") == "" || w.Header().Get("X-Sendfile") != "" || w.Header().Get("Content-Length") != "16" {
		t.Fatalf("the file the app named: %d %v %q", w.Code, w.Header(), w.Body.String())
	}
	if v, _ := seen.Load("/download"); v != "X-Sendfile" {
		t.Fatalf("the app was told X-Sendfile-Type %q, want X-Sendfile (and never the client's)", v)
	}
	if w := serve("/download?file="+report, "Range", "bytes=4-7"); w.Code != 206 || w.Body.String() != "4567" {
		t.Fatalf("a Range of it: %d %q", w.Code, w.Body.String())
	}
	if w := serve("/gone?status=404&file=" + report); w.Code != 404 || w.Body.String() != "0123456789abcdef" {
		t.Fatalf("the app's 404 with a file: %d %q", w.Code, w.Body.String())
	}
	// Through the fast path: the app has the request, net/http sends the file.
	fast := func(target string) *httptest.ResponseRecorder {
		t.Helper()
		ans, carry, ok := p.ForwardFast(fwdReq(target, "Host: example.org\r\nX-Sendfile-Type: X-Accel-Redirect\r\n"))
		if ok {
			t.Fatalf("the fast path answered an X-Sendfile answer itself: %d %q", ans.Status, ans.Header)
		}
		fc, _ := carry.(*fastCarry)
		if fc == nil {
			t.Fatalf("%s: declined without a carry", target)
		}
		req := httptest.NewRequest("GET", target, nil)
		req.RemoteAddr = "127.0.0.1:1234"
		w := httptest.NewRecorder()
		p.serveCarried(w, withSendfile(req), fc) // as ServeHTTP does with a carry
		return w
	}
	if w := fast("/fast?file=" + report); w.Code != 200 || w.Body.String() != "0123456789abcdef" {
		t.Fatalf("through the fast path: %d %q", w.Code, w.Body.String())
	}
	if v, _ := seen.Load("/fast"); v != "X-Sendfile" {
		t.Fatalf("the fast path told the app X-Sendfile-Type %q", v)
	}
	for _, c := range []struct {
		file string
		code int
	}{
		{secret, 403},
		{filepath.Join(files, "link-out"), 403},
		{files, 403},
		{filepath.Join(files, "missing.pdf"), 404},
		{"relative.pdf", 403},
	} {
		if w := serve("/download?file=" + c.file); w.Code != c.code || strings.Contains(w.Body.String(), "SECRET") {
			t.Errorf("X-Sendfile %s: %d %q, want %d", c.file, w.Code, w.Body.String(), c.code)
		}
	}
	logMu.Lock()
	if n := strings.Count(logs.String(), "X-Sendfile: the file the app named cannot be sent"); n != 5 {
		t.Errorf("%d refusals logged, want 5:\n%s", n, logs.String())
	}
	logMu.Unlock()

	p.sendfile = nil // app.sendfile_paths unset: the header is the app's
	w = serve("/plain?file=" + report)
	if w.Code != 200 || w.Header().Get("X-Sendfile") != report || w.Body.Len() != 0 {
		t.Fatalf("without sendfile paths: %d %v %q", w.Code, w.Header(), w.Body.String())
	}
	if v, _ := seen.Load("/plain"); v != "" {
		t.Fatalf("without sendfile paths the app was told X-Sendfile-Type %q", v)
	}
}
