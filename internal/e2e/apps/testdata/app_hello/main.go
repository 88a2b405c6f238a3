// Command app_hello is the smallest Go app served by phased, for the
// end-to-end tests of app.command (internal/e2e/apps): GET / names
// the child that answered ("pid P slot S generation G"), GET /slow?ms=N
// answers after N milliseconds (at most 10 s), so a test can watch a
// request in flight in the scoreboard.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/phasedhq/phased/sdk/child"
)

func main() {
	var slot, gen int
	remember := func(_ context.Context, rt *child.Runtime) error {
		slot, gen = rt.Slot, rt.Generation
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "pid %d slot %d generation %d\n", os.Getpid(), slot, gen)
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 || ms > 10000 {
			http.Error(w, "ms: want 0 to 10000", http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, "pid %d slept %d ms\n", os.Getpid(), ms)
	})
	child.Main(mux, child.OnInit(remember))
}
