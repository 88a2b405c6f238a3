// Package testkit holds what the tests of the app gateways share: an slog
// handler that keeps every record, so that a test can tell what the code
// under test logged, and a writer of file trees.
package testkit

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// Record is one logged record with its attributes, the logger's own
// included, as strings.
type Record struct {
	// Level is the record's level.
	Level slog.Level

	// Msg is its message.
	Msg string

	// Attrs are its attributes by key, as strings.
	Attrs map[string]string
}

// String returns the record on one line.
func (r Record) String() string {
	return fmt.Sprintf("%s %s %v", r.Level, r.Msg, r.Attrs)
}

// Recorder is an slog.Handler that keeps the records it handles.
type Recorder struct {
	mu      *sync.Mutex
	records *[]Record
	attrs   []slog.Attr
}

// New returns a logger writing to a new Recorder, and the Recorder.
func New() (*slog.Logger, *Recorder) {
	r := &Recorder{mu: new(sync.Mutex), records: new([]Record)}
	return slog.New(r), r
}

// Enabled reports true for every level.
func (r *Recorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle keeps rec.
func (r *Recorder) Handle(_ context.Context, rec slog.Record) error {
	out := Record{Level: rec.Level, Msg: rec.Message, Attrs: map[string]string{}}
	for _, a := range r.attrs {
		out.Attrs[a.Key] = a.Value.String()
	}
	rec.Attrs(func(a slog.Attr) bool {
		out.Attrs[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.records = append(*r.records, out)
	return nil
}

// WithAttrs returns a handler that adds attrs to every record.
func (r *Recorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *r
	c.attrs = append(append([]slog.Attr(nil), r.attrs...), attrs...)
	return &c
}

// WithGroup returns r: groups are not kept apart.
func (r *Recorder) WithGroup(string) slog.Handler { return r }

// Records returns the records kept so far.
func (r *Recorder) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), *r.records...)
}

// Find returns the records whose message is msg.
func (r *Recorder) Find(msg string) []Record {
	var out []Record
	for _, rec := range r.Records() {
		if rec.Msg == msg {
			out = append(out, rec)
		}
	}
	return out
}

// String returns every record, one a line.
func (r *Recorder) String() string {
	var b strings.Builder
	for _, rec := range r.Records() {
		b.WriteString(rec.String())
		b.WriteByte('\n')
	}
	return b.String()
}
