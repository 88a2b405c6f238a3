// Package conns holds the end-to-end tests of how phased's children treat
// connections that are slow, silent or malformed, on the real binary: in
// the event model a connection that sends nothing holds no worker and
// delays nobody, and the status page counts it as reading; a header's
// timeout runs from the accept, whatever the client sends and wherever the
// request is read (the fast path or net/http); an unparsable request line
// is answered 400 at once; a body dripped in below timeouts.min_rate is
// cut; an idle keep-alive connection is counted as keep-alive. The bounds
// the tests check are generous: each is several times what the behaviour
// takes, and well under what it took without it. They skip under go test
// -short.
package conns
