package gateway

import (
	"bytes"
	"context"
	"log/slog"
)

// Bounds on what one request's stderr may put in the log.
const (
	maxLineBytes = 4 << 10 // a longer line is cut there
	maxLines     = 100     // lines past these are counted, not logged
)

// LineLog is an io.Writer that logs each line an app writes to its stderr
// as one warning, with the attributes of its logger, so that a script's
// errors reach the child's log and never the response. It holds at most
// one line of 4 KiB (longer lines are cut) and logs at most 100 lines, then
// only counts what it drops: a script flooding its stderr cannot flood the
// log or the memory. It is not safe for concurrent use.
type LineLog struct {
	log     *slog.Logger
	msg     string
	line    []byte
	cut     bool  // the current line was cut at maxLineBytes
	lines   int   // lines logged
	dropped int64 // bytes not logged
}

// NewLineLog returns a LineLog that logs with msg as the message.
func NewLineLog(log *slog.Logger, msg string) *LineLog {
	return &LineLog{log: log, msg: msg}
}

// Write logs every complete line in p and keeps the last, incomplete one.
// It never fails.
func (l *LineLog) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		l.add(chunk)
		if i < 0 {
			break
		}
		l.flush()
		p = p[i+1:]
	}
	return n, nil
}

// add appends part of a line, or counts it once the line or the request's
// lines are full.
func (l *LineLog) add(b []byte) {
	if l.lines >= maxLines {
		l.dropped += int64(len(b))
		return
	}
	room := maxLineBytes - len(l.line)
	if len(b) > room {
		l.dropped += int64(len(b) - room)
		b, l.cut = b[:room], true
	}
	l.line = append(l.line, b...)
}

// flush logs the line held, if any.
func (l *LineLog) flush() {
	line := bytes.TrimRight(l.line, "\r")
	if len(line) > 0 && l.lines < maxLines {
		l.lines++
		attrs := []slog.Attr{slog.String("line", string(line))}
		if l.cut {
			attrs = append(attrs, slog.Bool("cut", true))
		}
		l.log.LogAttrs(context.Background(), slog.LevelWarn, l.msg, attrs...)
	}
	l.line, l.cut = l.line[:0], false
}

// Close logs the last line if it had no newline, and how much was dropped.
func (l *LineLog) Close() error {
	l.flush()
	if l.dropped > 0 {
		l.log.Warn(l.msg+" truncated", "dropped_bytes", l.dropped)
		l.dropped = 0
	}
	return nil
}
