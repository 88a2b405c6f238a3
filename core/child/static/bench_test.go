package static

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// discardWriter is a reusable http.ResponseWriter that throws the body
// away, so the benchmarks measure the handler and not a recorder.
type discardWriter struct {
	hdr  http.Header
	code int
	n    int64
}

func (w *discardWriter) Header() http.Header  { return w.hdr }
func (w *discardWriter) WriteHeader(code int) { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// ReadFrom stands in for the sendfile path of a real connection.
func (w *discardWriter) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(io.Discard, r)
	w.n += n
	return n, err
}

func benchFile(b *testing.B, size int) {
	benchHandler(b, size, func(root string) http.Handler { return New(Options{Root: root}) })
}

// benchHandler serves a size-byte file through the handler newHandler
// builds over a fresh document root.
func benchHandler(b *testing.B, size int, newHandler func(root string) http.Handler) {
	root := b.TempDir()
	writeFile(b, filepath.Join(root, "f.txt"), strings.Repeat("x", size-1)+"\n")
	h := newHandler(root)
	r := httptest.NewRequest("GET", "/f.txt", nil)
	w := &discardWriter{hdr: make(http.Header)}
	b.ReportAllocs()
	b.SetBytes(int64(size))
	for b.Loop() {
		clear(w.hdr)
		w.n, w.code = 0, 0
		h.ServeHTTP(w, r)
		if w.code != http.StatusOK || w.n != int64(size) {
			b.Fatalf("status %d, %d bytes", w.code, w.n)
		}
	}
}

// BenchmarkSmallFile serves a 6-byte file.
func BenchmarkSmallFile(b *testing.B) { benchFile(b, 6) }

// BenchmarkFile4K serves a 4 KiB file.
func BenchmarkFile4K(b *testing.B) { benchFile(b, 4096) }

// BenchmarkFileServer is the baseline phased's handler replaced: Go's
// http.FileServer, which opens, stats and reads the file on every request.
// bench/PROFILES.md has the figures side by side.
func BenchmarkFileServer(b *testing.B) {
	for _, size := range []int{6, 4096} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			benchHandler(b, size, func(root string) http.Handler { return http.FileServer(http.Dir(root)) })
		})
	}
}
