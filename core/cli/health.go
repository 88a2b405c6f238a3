package cli

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	proxyproto "github.com/pires/go-proxyproto"

	"github.com/phasedhq/phased/core/config"
)

// healthTimeout bounds a probe: a master that cannot answer its own probe
// within it is not well.
const healthTimeout = 5 * time.Second

// runHealth is `phased health [--ready]`: the liveness (readiness) probe
// of the master the configuration describes, asked from loopback through
// one of its listeners, for a container's HEALTHCHECK where no curl is.
// It prints the answer and exits 0 on 200, 1 otherwise.
func runHealth(o options, stdout, stderr io.Writer) int {
	cfg, err := load(o)
	if err != nil {
		fmt.Fprintf(stderr, "phased: %v\n", err)
		return 1
	}
	key, path := "health.liveness_path", cfg.Health.LivenessPath
	if o.ready {
		key, path = "health.readiness_path", cfg.Health.ReadinessPath
	}
	if path == "" {
		fmt.Fprintf(stderr, "phased: health: %s is off\n", key)
		return 1
	}
	code, body, err := probe(pickProbeListener(cfg.Listen), path)
	if err != nil {
		fmt.Fprintf(stderr, "phased: health: %s: %v\n", path, err)
		return 1
	}
	fmt.Fprintf(stdout, "phased: health: %s: %d %s\n", path, code, strings.TrimSpace(body))
	if code != http.StatusOK {
		return 1
	}
	return 0
}

// pickProbeListener picks the listener a local probe asks through: a
// plain one if there is one, else one with TLS, else one that wants a
// PROXY header.
func pickProbeListener(ls []config.Listener) config.Listener {
	best, rank := config.Listener{}, 4
	for _, l := range ls {
		r := 0
		if l.TLS != nil {
			r++
		}
		if l.ProxyProtocol {
			r += 2
		}
		if l.RedirectHTTPS != "" {
			r = 3
		}
		if r < rank {
			best, rank = l, r
		}
	}
	return best
}

// probe sends GET path to l from loopback: through TLS (unverified: the
// probe asks its own server) when l speaks it, after a PROXY v2 LOCAL
// header (the probe speaks for itself) when l wants one.
func probe(l config.Listener, path string) (int, string, error) {
	host, port, err := net.SplitHostPort(l.Address)
	if err != nil {
		return 0, "", err
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), healthTimeout)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(healthTimeout))
	if l.ProxyProtocol {
		h := &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
		if _, err := h.WriteTo(c); err != nil {
			return 0, "", err
		}
	}
	var conn net.Conn = c
	if l.TLS != nil {
		conn = tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}) // #nosec: its own listener
	}
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: phased-health\r\nConnection: close\r\n\r\n", path); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return resp.StatusCode, string(b), nil
}
