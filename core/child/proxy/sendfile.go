package proxy

import (
	"context"
	"errors"
	"net/http"
)

// X-Sendfile (gateway.Sendfile): an answer naming a file for the child to
// send leaves the reverse proxy's ModifyResponse as errSendfile, and its
// ErrorHandler sends the file; the answer's status and headers go from one
// to the other in the request's context.

// errSendfile is what ModifyResponse returns for an answer the child sends
// a file for.
var errSendfile = errors.New("X-Sendfile answer")

type sendfileKey struct{}

// sendfiled is an X-Sendfile answer, from ModifyResponse to the
// ErrorHandler.
type sendfiled struct {
	status int
	header http.Header
}

// withSendfile gives r a place for its answer's X-Sendfile.
func withSendfile(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), sendfileKey{}, new(sendfiled)))
}

// takeSendfile is the ModifyResponse step for an answer with X-Sendfile:
// it keeps the answer's status and headers for serveSendfile and returns
// errSendfile; nil for any other answer.
func (p *Proxy) takeSendfile(resp *http.Response) error {
	if !p.sendfile.Wanted(resp.StatusCode, resp.Header) {
		return nil
	}
	sf, _ := resp.Request.Context().Value(sendfileKey{}).(*sendfiled)
	if sf == nil {
		return nil
	}
	sf.status, sf.header = resp.StatusCode, resp.Header
	return errSendfile
}

// serveSendfile answers r with the file its app named.
func (p *Proxy) serveSendfile(w http.ResponseWriter, r *http.Request) {
	sf, _ := r.Context().Value(sendfileKey{}).(*sendfiled)
	if sf == nil || sf.header == nil { // cannot be: takeSendfile kept it
		http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
		return
	}
	p.sendfile.Serve(w, r, sf.status, sf.header, p.o.Log)
}
