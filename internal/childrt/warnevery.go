package childrt

import (
	"sync"
	"time"
)

// warnEvery counts events a child warns about at most once an interval,
// with how many came since the last warning (a PROXY header refused, a
// silent connection reclaimed).
type warnEvery struct {
	every time.Duration

	mu     sync.Mutex
	warned time.Time
	n      int // since the last warning
}

// add counts n events at now and reports whether to warn, with how many
// to warn about.
func (w *warnEvery) add(n int, now time.Time) (int, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n += n
	if now.Sub(w.warned) < w.every {
		return 0, false
	}
	n, w.n, w.warned = w.n, 0, now
	return n, true
}
