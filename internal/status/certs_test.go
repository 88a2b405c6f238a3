package status

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/scoreboard"
)

// TestCertificates: the status page (HTML and ?json) lists every
// certificate with its names, file and time left, and /metrics has the
// phased_tls_certificate_expiry_seconds gauge of each, negative once it
// has expired.
func TestCertificates(t *testing.T) {
	k, err := scoreboard.CreateCounters()
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	b, err := scoreboard.Create("status-certs-test", 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	now := time.Now()
	certs := []Certificate{
		{Listener: "127.0.0.1:8443", File: "/etc/phased/site.crt", Names: []string{"www.example.org", "example.org"}, NotAfter: now.Add(10 * 24 * time.Hour)},
		{Listener: "127.0.0.1:8443", File: "/etc/phased/old.crt", Names: []string{"old.example.org"}, NotAfter: now.Add(-2 * time.Hour)},
	}
	m, err := New(Options{Path: "/server-status", MetricsPath: "/metrics", Allow: []string{"192.0.2.0/24"}, MPM: "worker",
		Listeners: []string{"127.0.0.1:8443"}, Board: b, Counters: k, Certificates: certs})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) string {
		req := httptest.NewRequest("GET", path, nil)
		req.RemoteAddr = "192.0.2.7:1"
		rec := httptest.NewRecorder()
		m.Wrap(http.NotFoundHandler()).ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
		return rec.Body.String()
	}

	metrics := get("/metrics")
	for _, c := range []struct {
		names, file string
		want        float64
	}{
		{"www.example.org,example.org", "/etc/phased/site.crt", 10 * 86400},
		{"old.example.org", "/etc/phased/old.crt", -2 * 3600},
	} {
		re := regexp.MustCompile(`(?m)^phased_tls_certificate_expiry_seconds\{file="` + regexp.QuoteMeta(c.file) +
			`",listener="127\.0\.0\.1:8443",names="` + regexp.QuoteMeta(c.names) + `"\} (\S+)$`)
		m := re.FindStringSubmatch(metrics)
		if m == nil {
			t.Errorf("no expiry gauge for %s in /metrics:\n%s", c.file, metrics)
			continue
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil || v > c.want || v < c.want-60 {
			t.Errorf("expiry gauge of %s = %s, want about %.0f", c.file, m[1], c.want)
		}
	}

	var st struct {
		Certificates []Certificate `json:"certificates"`
	}
	if err := json.Unmarshal([]byte(get("/server-status?json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Certificates) != 2 || st.Certificates[0].File != "/etc/phased/site.crt" || st.Certificates[0].SecondsLeft <= 9*86400 ||
		st.Certificates[1].SecondsLeft >= 0 || st.Certificates[1].Names[0] != "old.example.org" {
		t.Errorf("?json certificates = %+v", st.Certificates)
	}

	page := get("/server-status")
	i := strings.Index(page, `<table id="certificates">`)
	if i < 0 {
		t.Fatalf("the HTML page has no certificate table:\n%s", page)
	}
	table := page[i : i+strings.Index(page[i:], "</table>")]
	for _, want := range []string{"<td>www.example.org, example.org</td><td>/etc/phased/site.crt</td>", `<td class="n">10.0</td>`,
		"<td>old.example.org</td>", `<td class="n">expired</td>`, now.Add(10 * 24 * time.Hour).UTC().Format("02-Jan-2006")} {
		if !strings.Contains(table, want) {
			t.Errorf("the certificate table has no %q:\n%s", want, table)
		}
	}
}
