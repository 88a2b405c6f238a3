// Package gateway holds what phased's two app gateways, core/child/fastcgi
// and core/child/cgi, share: finding the script a URL path names below a
// folder without ever leaving it, the RFC 3875 meta-variables of a request,
// a request body of known length, and the logging of an app's stderr.
package gateway

import (
	"fmt"
	"net"
	"net/http"
	"syscall"
)

// Error answers with a short plain text page for status code.
func Error(w http.ResponseWriter, code int) {
	http.Error(w, statusLine(code), code)
}

// statusLine is the page Error sends for code: "404 Not Found".
func statusLine(code int) string { return fmt.Sprintf("%d %s", code, http.StatusText(code)) }

// SocketAlive reports whether an idle connection to an app can still carry
// a request: the app has not closed it and sent nothing unasked. It peeks
// at the socket without blocking; a connection that is no socket is taken
// as alive.
func SocketAlive(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = err == syscall.EAGAIN
		return true
	})
	return err == nil && alive
}
