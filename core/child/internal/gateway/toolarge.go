package gateway

import (
	"net/http"
	"strings"
	"time"
)

// MaxBodyMessage is the 413's page for a body over app.max_body_size, the
// app proxy's and the app gateways' limit alike.
const MaxBodyMessage = "413 Request Entity Too Large: the body is over app.max_body_size"

// What TooLarge reads and drops of a refused body, at most: for lingerTime
// in all, while bytes keep coming (lingerIdle at most between two reads),
// up to lingerBytes.
const (
	lingerTime  = 2 * time.Second
	lingerIdle  = 500 * time.Millisecond
	lingerBytes = 64 << 20
)

// TooLarge answers 413 with msg and closes the connection after it, then
// reads and drops what is left of r's body while it keeps coming, within
// lingerTime, as nginx's and Apache's lingering close do. Most
// clients read the answer only once they have sent the whole body (and
// net/http, answering a client that asked to close the connection, reads
// none of it for them): closed with the body's bytes unread, the socket
// sends the client a reset, which can reach it before it reads the
// answer (Go's client then reports a broken pipe instead of the 413). A
// body the client waits to be asked for (Expect: 100-continue) is not
// asked for.
func TooLarge(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("Connection", "close")
	http.Error(w, msg, http.StatusRequestEntityTooLarge)
	if r.Body == nil || r.Body == http.NoBody || strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		return
	}
	rc := http.NewResponseController(w)
	if rc.EnableFullDuplex() != nil {
		return // HTTP/2: the stream is reset, the connection goes on
	}
	if rc.Flush() != nil {
		return // the answer would wait for the reading: close as before
	}
	buf := make([]byte, 32<<10)
	end := time.Now().Add(lingerTime)
	for n := 0; n < lingerBytes; {
		by := time.Now().Add(lingerIdle)
		if by.After(end) {
			by = end
		}
		if !time.Now().Before(by) || rc.SetReadDeadline(by) != nil {
			return
		}
		m, err := r.Body.Read(buf)
		n += m
		if err != nil {
			return
		}
	}
}
