package gateway

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// chunked makes a request whose body has no known length.
func chunked(body string) *http.Request {
	r := httptest.NewRequest("POST", "/", io.NopCloser(strings.NewReader(body)))
	r.ContentLength = -1
	r.TransferEncoding = []string{"chunked"}
	return r
}

func TestSizedBody(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	big := strings.Repeat("0123456789abcdef", 1<<17) // 2 MiB: past what stays in memory
	for _, tc := range []struct {
		name   string
		req    *http.Request
		max    int64
		want   string
		tooBig bool
	}{
		{name: "none", req: httptest.NewRequest("GET", "/", nil), max: 10},
		{name: "known length", req: httptest.NewRequest("POST", "/", strings.NewReader("hello")), max: 1, want: "hello"},
		{name: "chunked small", req: chunked("hello"), max: 10, want: "hello"},
		{name: "chunked exactly max", req: chunked("hello"), max: 5, want: "hello"},
		{name: "chunked too large", req: chunked("hello!"), max: 5, tooBig: true},
		{name: "chunked spills to a file", req: chunked(big), max: 4 << 20, want: big},
		{name: "chunked file too large", req: chunked(big), max: 3 << 20 / 2, tooBig: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := SizedBody(tc.req, tc.max)
			if tc.tooBig {
				if !errors.Is(err, ErrBodyTooLarge) {
					t.Fatalf("err %v, want ErrBodyTooLarge", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if b.Length != int64(len(tc.want)) {
				t.Fatalf("length %d, want %d", b.Length, len(tc.want))
			}
			var got []byte
			if b.Reader != nil {
				got, _ = io.ReadAll(b)
			}
			if !bytes.Equal(got, []byte(tc.want)) {
				t.Fatalf("body of %d bytes differs", len(got))
			}
		})
	}
	// The temporary files were unlinked as soon as they were made.
	if ents, _ := os.ReadDir(os.Getenv("TMPDIR")); len(ents) != 0 {
		t.Fatalf("left in TMPDIR: %v", ents)
	}
}
