package apps

import (
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// portMPM is the MPM section of the listen: port tests: one prefork child.
const portMPM = "mpm: {name: prefork, start_servers: 1, min_spare_servers: 1, max_spare_servers: 2, server_limit: 2}\n"

// testListenPort: with app.listen: port the app server gets a free
// loopback port, in PORT and in {port}, and no socket; requests reach it
// there as they do on a socket.
func testListenPort(t *testing.T, s *e2e.Server) {
	t.Helper()
	st := stats(t, s)
	if st.Env["PORT"] == "" || st.ArgPort != st.Env["PORT"] || st.Env["PHASED_APP_SOCKET"] != "" ||
		st.Env["PHASED_SLOT"] != "0" || st.Env["PHASED_THREADS"] != "1" || st.Env["PHASED_GENERATION"] == "" {
		t.Fatalf("with listen: port the app was given --port=%s and %v", st.ArgPort, st.Env)
	}
	// It listens on the loopback port it was given...
	code, body, err := e2e.Get("http://127.0.0.1:" + st.Env["PORT"] + "/stats")
	if code != 200 || !strings.Contains(body, fmt.Sprintf(`"pid":%d`, st.PID)) {
		t.Fatalf("the app on 127.0.0.1:%s: %d %v %q", st.Env["PORT"], code, err, body)
	}
	// ...and phased forwards there as it does to a socket.
	c := dial(t, s)
	defer c.Close()
	c.send("POST /echo?x=1 HTTP/1.1\nHost: port.example\nContent-Length: 5\n\nhello")
	if e := c.echo(); e.URL != "/echo?x=1" || e.Headers["x-forwarded-for"] != "127.0.0.1" || e.Headers["host"] != "port.example" ||
		e.BodySha256 != sha([]byte("hello")) {
		t.Errorf("through phased to the app on a port: %+v", e)
	}
	if !slices.Contains(appPIDs(t, s), st.PID) {
		t.Errorf("phased status: %+v, want the app %d", appStatus(t, s), st.PID)
	}
}

// TestHTTPAppPortAndBadConfig: an app on a port (testListenPort), then
// each wrong app setting is an error that names its key, from phased -t
// where a check can tell, and from -k graceful, which exits 1 while the
// old generation keeps serving every request: no command, a command that
// is no program, a placeholder of the other way to listen, an app that
// never listens (app.start_timeout), an app whose health check answers 500
// (app.health_check).
func TestHTTPAppPortAndBadConfig(t *testing.T) {
	good := nodeApp(t, []string{"--port={port}"}, "  listen: port\n")
	s := e2e.StartServer(t, portMPM+good, func(dir string) {
		e2e.WriteFile(t, dir, "not-a-program.sh", "#!/bin/sh\nexit 0\n") // mode 0644
	})
	testListenPort(t, s)
	apps := appPIDs(t, s)
	stop := make(chan struct{})
	load := make(chan e2e.LoadResult, 1)
	go func() { load <- e2e.Load(s.Addr, "/stats", 2, false, math.MaxInt, stop) }()

	cases := []struct {
		name, app string
		checked   bool     // phased -t finds it too
		want      []string // in the error
	}{
		{"no command", "app: {type: http, listen: port}\n", true, []string{"app.type", "app.command"}},
		{"not a program", "app: {type: http, listen: port, command: [./not-a-program.sh]}\n", true, []string{"app.command[0]", "permission denied"}},
		{"port with socket", strings.Replace(good, "  listen: port\n", "  listen: socket\n", 1), true, []string{"app.command[2]", "{port}", "listen: socket"}},
		{"never listens", strings.Replace(good, "  listen: port\n", "  listen: port\n  start_timeout: 500ms\n", 1), false, nil},
		// Time to start listening, even on a busy machine, then to answer 500.
		{"unhealthy", strings.Replace(good, "  listen: port\n", "  listen: port\n  health_check: /health\n  start_timeout: 5s\n", 1), false,
			[]string{"app.health_check", "GET /health", "500 Internal Server Error", "app.start_timeout"}},
	}
	cases[3].app = strings.Replace(cases[3].app, `"--port={port}"`, `"--port={port}", "--no-listen"`, 1)
	cases[3].want = []string{"app.start_timeout", "did not answer", "500ms"}
	cases[4].app = strings.Replace(cases[4].app, `"--port={port}"`, `"--port={port}", "--unhealthy"`, 1)
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			conf := e2e.WriteFile(t, s.Dir, "phased.yaml", e2e.Config(s.Addr, portMPM+tc.app))
			if tc.checked {
				code, out, errOut := e2e.Run(t, s.Dir, nil, "-t", "-f", conf)
				for _, w := range tc.want {
					if code == 0 || !strings.Contains(out+errOut, w) {
						t.Errorf("phased -t: exit %d, %q; want an error with %q", code, out+errOut, w)
					}
				}
			}
			start := time.Now()
			code, out, errOut := e2e.Run(t, s.Dir, nil, "-f", conf, "-k", "graceful")
			for _, w := range tc.want {
				if code != 1 || !strings.Contains(errOut, w) {
					t.Errorf("-k graceful: exit %d, %q %q; want 1 and an error with %q", code, out, errOut, w)
				}
			}
			if got := appPIDs(t, s); !containsAll(got, apps) {
				t.Errorf("the apps were %v, now %v", apps, got)
			}
			t.Logf("-k graceful said in %s: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(errOut))
		})
	}
	close(stop)
	if r := <-load; r.Errors > 0 || r.Non2xx > 0 || r.Requests < 10 {
		t.Errorf("requests during the failed restarts: %s", r)
	}
	os.WriteFile(filepath.Join(s.Dir, "phased.yaml"), []byte(e2e.Config(s.Addr, portMPM+good)), 0o644)
	if code, _, errOut := e2e.Run(t, s.Dir, nil, "-f", s.Conf, "-k", "graceful"); code != 0 {
		t.Fatalf("-k graceful back to the good config: %s", errOut)
	}
	if code, body, err := e2e.Get(s.URL("/stats")); code != http.StatusOK {
		t.Fatalf("after the good restart: %d %v %q", code, err, body)
	}
}

// containsAll reports whether every one of want is in got.
func containsAll(got, want []int) bool {
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}
