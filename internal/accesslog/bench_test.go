package accesslog

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// discardRW is the cheapest ResponseWriter, so the benchmark measures the
// middleware and not the recorder.
type discardRW struct{ h http.Header }

func (d *discardRW) Header() http.Header         { return d.h }
func (d *discardRW) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardRW) WriteHeader(int)             {}

// BenchmarkMiddleware measures the per-request cost of logging: wrapping the
// ResponseWriter, building the line and adding it to the Writer's batch.
// "bare" is the handler alone, for reference.
func BenchmarkMiddleware(b *testing.B) {
	body := []byte("hello\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(body) })
	r := httptest.NewRequest("GET", "/index.html?q=1", nil)
	r.RemoteAddr = "192.0.2.7:51234"
	r.Header.Set("Referer", "http://www.example.com/start.html")
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36")

	run := func(b *testing.B, handler http.Handler) {
		rw := &discardRW{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			handler.ServeHTTP(rw, r)
		}
	}
	b.Run("bare", func(b *testing.B) { run(b, h) })
	for _, f := range []Format{FormatCommon, FormatCombined, FormatJSON, FormatCombinedDuration} {
		b.Run(f.String(), func(b *testing.B) {
			w := NewWriter(io.Discard, WriterOptions{})
			defer w.Close()
			run(b, Middleware(h, w, f))
		})
	}
	b.Run("combined-parallel", func(b *testing.B) {
		w := NewWriter(io.Discard, WriterOptions{})
		defer w.Close()
		m := Middleware(h, w, FormatCombined)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			rw := &discardRW{h: http.Header{}}
			for pb.Next() {
				m.ServeHTTP(rw, r)
			}
		})
	})
}
