// Package httpdate is the Date header's value, formatted once a second
// for every response of the process: the HTTP/1 fast path writes it as a
// header line, phased's HTTP/2 server as an HPACK field.
package httpdate

import (
	"net/http"
	"sync/atomic"
	"time"
)

type stamp struct {
	sec   int64
	value string // "Mon, 07 Dec 2026 02:14:00 GMT"
	line  []byte // "Date: " value CRLF
}

var cur atomic.Pointer[stamp]

func at(now time.Time) *stamp {
	sec := now.Unix()
	if s := cur.Load(); s != nil && s.sec == sec {
		return s
	}
	v := now.UTC().Format(http.TimeFormat)
	s := &stamp{sec: sec, value: v, line: []byte("Date: " + v + "\r\n")}
	cur.Store(s)
	return s
}

// Value is the Date value for now.
func Value(now time.Time) string { return at(now).value }

// Line is the Date header line for now, with its CRLF. The caller must not
// change it.
func Line(now time.Time) []byte { return at(now).line }
