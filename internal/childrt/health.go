package childrt

import (
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/phasedhq/phased/internal/clientip"
	"github.com/phasedhq/phased/internal/scoreboard"
)

// The health endpoints. Every child answers them itself, from its
// generation's scoreboard header, which the master writes (SetStopping,
// Beat): a probe costs a few atomic loads and a write, never a word with
// the master, and neither an access-log line nor a scoreboard request.
//
// Liveness is 200 while the master's event loop was heard from within
// masterSilence (a stopped or wedged master makes it 503) and, since a
// child answers, a generation serves. Readiness is liveness, and 503 once
// the master is stopping: from the start of a graceful stop, through its
// drain delay (health.drain_delay) while the child still serves, to the
// end. A binary upgrade leaves it alone: the new master serves the same
// sockets, so the instance never stops being ready.

// masterSilence is how long the master may go without a heartbeat before
// liveness fails. Its event loop beats a few times a second, and keeps
// beating during a configuration pass (hooks that run for minutes), so
// only a stopped or wedged master goes silent this long.
const masterSilence = 10 * time.Second

// health answers the liveness and readiness paths.
type health struct {
	live, ready string // paths; "" = off
	allow       clientip.Nets
	board       *scoreboard.Board // nil outside a master: always well
}

// newHealth returns the health endpoints, or nil when both paths are off.
func newHealth(live, ready string, allow clientip.Nets, board *scoreboard.Board) *health {
	if live == "" && ready == "" {
		return nil
	}
	return &health{live: live, ready: ready, allow: allow, board: board}
}

// serves reports whether path is a health endpoint.
func (h *health) serves(path string) bool {
	return h != nil && path != "" && (path == h.live || path == h.ready)
}

// The answers, by kind.
const (
	healthOK = iota
	healthStopping
	healthSilent
	healthForbidden
	numHealthAnswers
)

var healthAnswers = [numHealthAnswers]struct {
	status int
	body   string
}{
	healthOK:        {http.StatusOK, "ok\n"},
	healthStopping:  {http.StatusServiceUnavailable, "stopping\n"},
	healthSilent:    {http.StatusServiceUnavailable, "master not responding\n"},
	healthForbidden: {http.StatusForbidden, "403 Forbidden: health checks are not open to your address\n"},
}

// answer decides the answer to a probe of path from client at now.
func (h *health) answer(path string, client netip.Addr, now time.Time) int {
	if !h.allow.Contains(client) {
		return healthForbidden
	}
	if h.board == nil {
		return healthOK
	}
	if beat := h.board.Heartbeat(); !beat.IsZero() && now.Sub(beat) > masterSilence {
		return healthSilent
	}
	if path == h.ready && h.board.Stopping() {
		return healthStopping
	}
	return healthOK
}

// ServeHTTP answers a probe through net/http.
func (h *health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a := healthAnswers[h.answer(r.URL.Path, clientip.FromRemoteAddr(r.RemoteAddr), time.Now())]
	hd := w.Header()
	hd.Set("Content-Type", "text/plain; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(a.status)
	if r.Method != http.MethodHead {
		w.Write([]byte(a.body))
	}
}

// fastHealth are the fast path's answers, made once: the status line and
// headers up to Date, and the body.
var fastHealth = func() (out [numHealthAnswers]struct{ head, body []byte }) {
	for i, a := range healthAnswers {
		out[i].head = []byte("HTTP/1.1 " + strconv.Itoa(a.status) + " " + http.StatusText(a.status) + "\r\n" +
			"Content-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n" +
			"Content-Length: " + strconv.Itoa(len(a.body)) + "\r\n")
		out[i].body = []byte(a.body)
	}
	return out
}()

// answerHealth appends the fast path's answer to a probe to out.
func (s *server) answerHealth(out []byte, req *fastRequest, client netip.Addr, now time.Time) []byte {
	a := fastHealth[s.health.answer(bstr(req.path), client, now)]
	out = append(out, a.head...)
	out = s.endHeader(out, req, now)
	if !req.head {
		out = append(out, a.body...)
	}
	return out
}
