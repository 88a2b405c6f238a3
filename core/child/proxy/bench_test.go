package proxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
)

// benchApp serves "hello\n" on a unix socket, the way the app servers of
// bench/apps do: closing each connection after its response (gunicorn's
// sync workers, unicorn) or keeping it (puma).
func benchApp(b *testing.B, keepAlive bool) *Proxy {
	b.Helper()
	sock := filepath.Join(b.TempDir(), "app.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !keepAlive {
			w.Header().Set("Connection", "close")
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "6")
		io.WriteString(w, "hello\n")
	})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	var d net.Dialer
	return New(Options{
		Dial:  func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "unix", sock) },
		Conns: 4, MaxBodySize: 1 << 20, BodyBufferSize: 1 << 20, ResponseBufferSize: 1 << 20, MaxTempFileSize: 1 << 30,
		TempDir: b.TempDir(), Log: slog.New(slog.DiscardHandler),
	})
}

// BenchmarkProxy is one GET through the proxy to a local app, as a child
// forwards it: the cost phased adds per request in front of an app server.
func BenchmarkProxy(b *testing.B) {
	for _, ka := range []bool{true, false} {
		b.Run("keepalive="+strconv.FormatBool(ka), func(b *testing.B) {
			p := benchApp(b, ka)
			req := httptest.NewRequest("GET", "http://127.0.0.1/hello", nil)
			req.RemoteAddr = "127.0.0.1:1234"
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				p.ServeHTTP(w, req)
				if w.Code != 200 || w.Body.Len() != 6 {
					b.Fatalf("%d %q", w.Code, w.Body.String())
				}
			}
		})
	}
}
