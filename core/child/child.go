// Package child is phased's built-in child: the process the master starts
// with ChildArg when app.command is empty. It serves static files from
// document_root (core/child/static) on the child runtime
// (internal/childrt), which also answers the status page and the metrics.
package child

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/phasedhq/phased/core/child/static"
	"github.com/phasedhq/phased/internal/childrt"
	"github.com/phasedhq/phased/internal/contract"
)

// Arg is the argument that starts the phased binary in child mode.
const Arg = contract.ChildArg

// Main runs the built-in child and returns its exit status: 0 after a clean
// drain, contract.ExitChildInit when child-init failed, 1 on any other
// error (logged).
func Main(stderr io.Writer) int {
	childrt.SampleHeapOnlyWhenAsked()
	rt, err := childrt.Current()
	if err != nil {
		fmt.Fprintf(stderr, "phased child: %v\n", err)
		return 1
	}
	st := rt.Contract.Static
	if st == nil {
		rt.Log.Error("the master gave no static file settings to phased's own child")
		return 1
	}
	if a := rt.Contract.App; a != nil {
		err = serveApp(rt, a)
	} else {
		var h http.Handler = static.New(static.Options{Root: st.Root, DirectoryListing: st.Listing})
		rt.Fast, _ = h.(childrt.FastResponder) // small files from memory, without net/http
		err = rt.Serve(h)
	}
	if err != nil {
		if errors.Is(err, childrt.ErrChildInit) {
			return contract.ExitChildInit
		}
		rt.Log.Error("serving", "err", err)
		return 1
	}
	return 0
}
