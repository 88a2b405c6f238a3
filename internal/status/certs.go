package status

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Certificate is one TLS certificate a listener serves.
type Certificate struct {
	// Listener is the listen address it is served on.
	Listener string `json:"listener"`
	// File is where the master read it.
	File string `json:"file"`
	// Names are the host names it is for.
	Names []string `json:"names"`
	// NotAfter is when it expires.
	NotAfter time.Time `json:"not_after"`
	// SecondsLeft is how long it is still valid (negative: expired).
	SecondsLeft int64 `json:"seconds_left"`
}

var certDesc = prometheus.NewDesc("phased_tls_certificate_expiry_seconds",
	"Seconds until a TLS certificate a listener serves expires (negative: expired).", []string{"listener", "names", "file"}, nil)

// certificates returns the module's certificates with their time left.
func (m *Module) certificates(now time.Time) []Certificate {
	out := make([]Certificate, len(m.certs))
	for i, c := range m.certs {
		c.SecondsLeft = int64(c.NotAfter.Sub(now).Seconds())
		out[i] = c
	}
	return out
}

// collectCertificates adds the expiry gauge of every certificate.
func (m *Module) collectCertificates(ch chan<- prometheus.Metric) {
	for _, c := range m.certificates(time.Now()) {
		ch <- prometheus.MustNewConstMetric(certDesc, prometheus.GaugeValue, float64(c.SecondsLeft), c.Listener, strings.Join(c.Names, ","), c.File)
	}
}

// daysLeft is a certificate's time left in days for the HTML page, with
// one decimal; "expired" once it has.
func daysLeft(seconds int64) string {
	if seconds < 0 {
		return "expired"
	}
	return fmt.Sprintf("%.1f", float64(seconds)/86400)
}
