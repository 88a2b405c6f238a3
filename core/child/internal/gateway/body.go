package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
)

// ErrBodyTooLarge is returned by SizedBody for a body of unknown length
// longer than the limit it was given.
var ErrBodyTooLarge = errors.New("request body too large")

// memBody is how much of a body of unknown length is held in memory before
// the rest goes to a temporary file.
const memBody = 1 << 20

// Body is a request body whose length is known, as a CGI or FastCGI app
// needs it for CONTENT_LENGTH.
type Body struct {
	// Reader reads the body; it is nil when there is none.
	io.Reader

	// Length is the body's length in bytes.
	Length int64

	file *os.File // the temporary file holding it, if any
}

// Close releases the temporary file a buffered body may have used.
func (b *Body) Close() error {
	if b.file == nil {
		return nil
	}
	return b.file.Close()
}

// SizedBody returns r's body with its length. A body of known length is
// returned as it is, read as it arrives. One of unknown length (chunked) is
// read whole first: up to 1 MiB in memory, the rest in a temporary file
// that is unlinked at once; past max bytes it returns ErrBodyTooLarge.
func SizedBody(r *http.Request, max int64) (*Body, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return &Body{}, nil
	}
	if r.ContentLength > 0 {
		return &Body{Reader: io.LimitReader(r.Body, r.ContentLength), Length: r.ContentLength}, nil
	}
	return readWhole(r.Body, max, memBody, "")
}

// WholeBody returns r's body read whole, whatever its length, so that the
// app gets a request only once the client has sent all of it: up to mem
// bytes in memory, the rest in a temporary file in dir ("" for the
// default) that is unlinked at once. Past max bytes it returns
// ErrBodyTooLarge.
func WholeBody(r *http.Request, max, mem int64, dir string) (*Body, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return &Body{}, nil
	}
	if r.ContentLength > max {
		return nil, ErrBodyTooLarge
	}
	return readWhole(r.Body, max, mem, dir)
}

// readWhole reads body to its end: up to mem bytes in memory, the rest in
// an unlinked temporary file in dir; past max bytes it returns
// ErrBodyTooLarge.
func readWhole(body io.Reader, max, mem int64, dir string) (*Body, error) {
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(body, min(max, mem)+1))
	if err != nil {
		return nil, fmt.Errorf("reading the request body: %w", err)
	}
	if n > max {
		return nil, ErrBodyTooLarge
	}
	if n <= mem {
		return &Body{Reader: bytes.NewReader(buf.Bytes()), Length: n}, nil
	}
	f, err := os.CreateTemp(dir, "phased-body-*")
	if err != nil {
		return nil, fmt.Errorf("buffering the request body: %w", err)
	}
	os.Remove(f.Name())
	b := &Body{file: f}
	m, err := io.Copy(f, io.MultiReader(&buf, io.LimitReader(body, max-n+1)))
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("buffering the request body: %w", err)
	}
	if m > max {
		f.Close()
		return nil, ErrBodyTooLarge
	}
	b.Reader, b.Length = f, m
	return b, nil
}

// RequestBody returns r's body as SizedBody does, or, with mem above 0, as
// WholeBody does with mem and dir; or it answers r itself, 413 for a body
// past max and 400 for one that could not be read, and returns false.
func RequestBody(w http.ResponseWriter, r *http.Request, max, mem int64, dir string) (*Body, bool) {
	var b *Body
	var err error
	if mem > 0 {
		b, err = WholeBody(r, max, mem, dir)
	} else {
		b, err = SizedBody(r, max)
	}
	switch {
	case errors.Is(err, ErrBodyTooLarge):
		TooLarge(w, r, statusLine(http.StatusRequestEntityTooLarge))
		return nil, false
	case err != nil:
		Error(w, http.StatusBadRequest)
		return nil, false
	}
	return b, true
}
