package langs

import (
	"testing"

	"github.com/phasedhq/phased/internal/e2e"
)

// needRack skips t loudly unless Debian's rack and server are installed.
func needRack(t *testing.T, server string) {
	t.Helper()
	e2e.Binary(t)
	e2e.Program(t, "/usr/bin/ruby:rack", "ruby-rack")
	e2e.Program(t, server, server)
}

// TestRackPuma runs examples/app-rack's phased.yaml (puma, {threads}
// threads, under the worker MPM): GET, a POST body, a streamed response; a
// graceful restart under load loses no request; a request in flight while
// its child retires completes; and puma's stop signal, TERM, lets it finish
// a request it still runs when its child is stopped.
func TestRackPuma(t *testing.T) {
	t.Parallel()
	needRack(t, "puma")
	x := startExample(t, "app-rack", "phased.yaml", nil)
	x.operate(t, "rack", "puma", nil)
}

// TestRackUnicorn runs examples/app-rack's phased-unicorn.yaml (unicorn,
// one worker, under prefork) through the same: requests, a graceful
// restart under load, a request in flight through a retirement, and
// unicorn's graceful stop signal, QUIT (its TERM cuts requests).
func TestRackUnicorn(t *testing.T) {
	t.Parallel()
	needRack(t, "unicorn")
	x := startExample(t, "app-rack", "phased-unicorn.yaml", nil)
	x.operate(t, "rack", "unicorn", nil)
}
