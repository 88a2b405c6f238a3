package fastcgi

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/phasedhq/phased/core/child/internal/testkit"
)

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
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK || w.Body.String() != "hello" {
					b.Fatalf("%d %q", w.Code, w.Body)
				}
			}
		})
	}
}
