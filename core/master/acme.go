package master

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/phasedhq/phased/core/acme"
	"github.com/phasedhq/phased/core/config"
	"github.com/phasedhq/phased/core/supervisor"
	"github.com/phasedhq/phased/internal/contract"
)

// The ACME renewal schedule: how often certificates are checked when all is
// well, and the back-off after a failed order.
const (
	acmeCheck        = 12 * time.Hour
	acmeFirstBackoff = time.Minute
	acmeMaxBackoff   = time.Hour
)

// acmeState is the master's automatic certificates: what it is doing and
// when it looks next.
type acmeState struct {
	busy    bool      // an order runs
	next    time.Time // when to check again
	backoff time.Duration
	rollout bool // a new certificate waits for a graceful restart
}

// acmeDirs are the folders the children read challenge answers from.
func (m *Master) acmeDirs() (httpDir, tlsDir string) {
	return filepath.Join(m.rundir, "acme-http"), filepath.Join(m.rundir, "acme-tls")
}

// acmeOptions are the ACME orders cfg asks for, one per listener.
func (m *Master) acmeOptions(cfg *config.Config) []acme.Options {
	httpDir, tlsDir := m.acmeDirs()
	uid, gid := -1, -1
	if cur, ok := m.sv.Current(); ok {
		if g := m.gens[cur.Num]; g != nil && g.who != nil {
			uid, gid = int(g.who.UID), int(g.who.GID)
		}
	}
	var out []acme.Options
	for _, l := range cfg.Listen {
		if l.TLS == nil || l.TLS.ACME == nil {
			continue
		}
		a := l.TLS.ACME
		out = append(out, acme.Options{Names: a.Names, Email: a.Email, Directory: a.Directory, CAFile: a.CA, Storage: a.Storage,
			Challenge: a.Challenge, RenewBefore: a.RenewBefore, HTTPDir: httpDir, TLSDir: tlsDir, UID: uid, GID: gid, Log: m.log})
	}
	return out
}

// addACME gives the pass's ACME listeners what the storage holds, and the
// folder their children answer TLS-ALPN-01 from. A listener with no
// certificate yet serves only the challenge until the first order is done.
func (m *Master) addACME(p *pass) {
	httpDir, tlsDir := m.acmeDirs()
	for _, l := range p.cfg.Listen {
		if l.TLS == nil || l.TLS.ACME == nil {
			continue
		}
		t := p.tls[l.Address]
		if t == nil {
			continue
		}
		t.Challenges = tlsDir
		o := acme.Options{Names: l.TLS.ACME.Names, Storage: l.TLS.ACME.Storage}
		if st, ok := acme.Load(o); ok {
			t.Certificates = append(t.Certificates, contract.Certificate{File: filepath.Join(o.Storage, "certificates", o.Names[0], "cert.pem"),
				KeyFile: filepath.Join(o.Storage, "certificates", o.Names[0], "key.pem"), Cert: st.Cert, Key: st.Key})
		}
		p.acmeHTTP = httpDir
	}
	for _, d := range []string{httpDir, tlsDir} {
		os.Mkdir(d, 0o711)
	}
}

// acmeTick starts an order when a certificate is missing, lacks one of
// its listener's names, or is due for renewal, and rolls a new one
// out with a graceful restart once the supervisor can take one. It looks
// again every acmeCheck, or when the next certificate is due if sooner.
func (m *Master) acmeTick(now time.Time) {
	a := &m.acme
	if a.rollout && m.sv.CanRestart() {
		a.rollout = false
		m.logNotice("ACME: rolling the new certificate out with a graceful restart")
		m.handle(supervisor.Command{Cmd: supervisor.CmdGraceful})
	}
	if a.busy || now.Before(a.next) || m.sv.Stopping() {
		return
	}
	next := now.Add(acmeCheck)
	for _, o := range m.acmeOptions(m.cfg) {
		if st, ok := acme.Load(o); ok {
			why := "renewal due"
			switch at := st.RenewAt(o.RenewBefore); {
			case !st.Covers(o.Names):
				why = "the certificate lacks a name"
			case now.Before(at):
				next = minTime(next, at)
				continue
			}
			m.log.Info("ACME: renewing", "names", o.Names, "reason", why, "not_after", st.NotAfter.Format(time.RFC3339))
		}
		a.busy = true
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			_, err := acme.Obtain(ctx, o)
			m.events <- event{kind: evACME, err: err}
		}()
		return // one order at a time
	}
	a.next = next
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// acmeDone takes an order's outcome.
func (m *Master) acmeDone(err error) {
	a := &m.acme
	a.busy = false
	if err != nil {
		a.backoff = min(max(2*a.backoff, acmeFirstBackoff), acmeMaxBackoff)
		a.next = time.Now().Add(a.backoff)
		m.log.Error("ACME: obtaining a certificate failed; trying again later", "err", err, "retry_in", a.backoff.String())
		return
	}
	a.backoff, a.next, a.rollout = 0, time.Now(), true // look for the next name at once
}
