// Package tls holds the end-to-end tests of phased's TLS listeners: HTTPS
// with certificates the master reads, SNI, HTTP/2 by ALPN and h2c, the
// redirect to HTTPS, errors that name the listener and the file, a
// certificate reload on a graceful restart, session resumption across
// children and generations, automatic certificates from a real ACME server
// (Debian's pebble), children running as another user with a key only
// root reads, the certificate's expiry on the status page and in /metrics,
// examples/tls run as shipped, and clients nobody here wrote (curl,
// h2load, h2spec, testssl.sh). The tests run the real binary through the harness in
// internal/e2e and skip under go test -short.
package tls
