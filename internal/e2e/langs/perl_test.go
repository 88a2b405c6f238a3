package langs

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// page GETs /page and returns it.
func (x *example) page(t *testing.T) string {
	t.Helper()
	resp, err := client.Get(x.URL("/page"))
	if err != nil {
		t.Fatalf("GET /page: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /page = %s %q", resp.Status, b)
	}
	return string(b)
}

// TestPerlExample runs examples/app-perl's phased.yaml (Starman, {threads}
// workers per child, under the worker MPM, and startup.pl at post-config):
// the page comes from the templates startup.pl compiled for the serving
// generation; a template with a mistake makes -k graceful fail naming the
// hook and the mistake, while the old generation keeps serving its page;
// once fixed, the restart goes through. Then GET, a POST body, a streamed
// response (PSGI streaming), a graceful restart under load, a request in
// flight through a retirement, and Starman's graceful stop signal, QUIT,
// sent to its master alone (sent to its workers too, it cuts their
// requests).
func TestPerlExample(t *testing.T) {
	t.Parallel()
	e2e.Binary(t)
	e2e.Program(t, "starman", "starman")
	e2e.Program(t, "/usr/bin/perl:Plack", "libplack-perl")
	x := startExample(t, "app-perl", "phased.yaml", nil)
	if got := x.page(t); !strings.Contains(got, "<h1>Hello from Perl</h1>") ||
		!strings.Contains(got, "generation 1.</p>") || !strings.Contains(got, "compiled by startup.pl for generation 1.") {
		t.Fatalf("GET /page:\n%s", got)
	}
	if n := x.Log.Count("startup.pl: compiled page for generation 1"); n != 1 {
		t.Errorf("startup.pl compiled the templates %d times at start, want once (pass 2; pass 1 only checks)", n)
	}

	// A mistake in a template: the restart fails, the old generation serves.
	tmpl := filepath.Join(x.Dir, "templates/page.tmpl")
	good, err := os.ReadFile(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmpl, []byte(strings.Replace(string(good), "<h1>{{title}}", "<h1>{{titel}}", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	kids := e2e.Sorted(e2e.Workers(x.PID()))
	code, out, errOut := e2e.Run(t, x.Dir, nil, "-f", x.Conf, "-k", "graceful")
	msg := out + errOut
	for _, want := range []string{`hook "compile-templates" (post-config)`, "templates/page.tmpl line 3: unknown placeholder {{titel}}",
		"the old generation keeps serving"} {
		if code != 1 || !strings.Contains(msg, want) {
			t.Fatalf("-k graceful with a bad template: exit %d, without %q:\n%s", code, want, msg)
		}
	}
	if got := x.page(t); !strings.Contains(got, "compiled by startup.pl for generation 1.") || !strings.Contains(got, "<h1>Hello from Perl</h1>") {
		t.Fatalf("after the failed restart GET /page:\n%s", got)
	}
	if now := e2e.Sorted(e2e.Workers(x.PID())); !slices.Equal(now, kids) {
		t.Fatalf("after the failed restart the children are %v, want the old generation's %v", now, kids)
	}

	// Fixed: the restart goes through, with the templates compiled for it.
	if err := os.WriteFile(tmpl, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := e2e.Run(t, x.Dir, nil, "-f", x.Conf, "-k", "graceful"); code != 0 {
		t.Fatalf("-k graceful with the template fixed: %d %s %s", code, out, errOut)
	}
	e2e.WaitGone(t, kids, 30*time.Second)
	// The failed restart made no generation: this one is the second.
	if got := x.page(t); !strings.Contains(got, "compiled by startup.pl for generation 2.") || !strings.Contains(got, "generation 2.</p>") {
		t.Fatalf("after the restart GET /page:\n%s", got)
	}

	x.operate(t, "perl", "starman", nil)
}
