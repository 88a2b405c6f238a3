// Package gateway holds what phased's two app gateways, core/child/fastcgi
// and core/child/cgi, share: finding the script a URL path names below a
// folder without ever leaving it, the RFC 3875 meta-variables of a request,
// a request body of known length, and the logging of an app's stderr.
package gateway

import (
	"fmt"
	"net/http"
)

// Error answers with a short plain text page for status code.
func Error(w http.ResponseWriter, code int) {
	http.Error(w, fmt.Sprintf("%d %s", code, http.StatusText(code)), code)
}
