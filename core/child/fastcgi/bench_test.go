package fastcgi

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/phasedhq/phased/core/child/internal/testkit"
)

// discardWriter is a reusable http.ResponseWriter that throws the body
// away, so that the benchmark measures the handler and the FastCGI server.
type discardWriter struct {
	hdr  http.Header
	code int
	n    int
}

func (w *discardWriter) Header() http.Header  { return w.hdr }
func (w *discardWriter) WriteHeader(code int) { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	return len(p), nil
}

// BenchmarkPHPHello is one GET through the handler to a real php-cgi
// running a hello world, over a unix socket, with and without kept
// connections: the figure to set beside Apache with mod_fcgid. php-cgi
// runs two workers that are not recycled during the run.
func BenchmarkPHPHello(b *testing.B) {
	root := b.TempDir()
	testkit.Tree(b, root, map[string]string{"hello.php": `<?php echo "hello";`})
	php := startPHP(b, "unix", 2, 0)
	for _, keep := range []bool{false, true} {
		name := "close"
		if keep {
			name = "keepconn"
		}
		b.Run(name, func(b *testing.B) {
			h, err := New(Options{Network: "unix", Address: php.addr, Root: root, KeepConn: keep, Logger: discardLog})
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			r := httptest.NewRequest("GET", "/hello.php", nil)
			w := &discardWriter{hdr: make(http.Header)}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.hdr)
				w.code, w.n = 0, 0
				h.ServeHTTP(w, r)
				if w.code != http.StatusOK || w.n != 5 {
					b.Fatalf("status %d, %d bytes", w.code, w.n)
				}
			}
		})
	}
}
