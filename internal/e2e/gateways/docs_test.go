package gateways

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/phasedhq/phased/internal/e2e"
)

// flatten adds the leaves of m to out as prefix.key: value, a value as
// -S writes it in one line: a scalar as it is ("" when empty), a list as
// [a, b], an empty map as {}.
func flatten(prefix string, m map[string]any, out map[string]string) {
	for k, v := range m {
		key := prefix + "." + k
		switch v := v.(type) {
		case map[string]any:
			if len(v) == 0 {
				out[key] = "{}"
			} else {
				flatten(key, v, out)
			}
		case []any:
			var items []string
			for _, it := range v {
				items = append(items, fmt.Sprint(it))
			}
			out[key] = "[" + strings.Join(items, ", ") + "]"
		case string:
			out[key] = v
			if v == "" {
				out[key] = `""`
			}
		default:
			out[key] = fmt.Sprint(v)
		}
	}
}

// TestAppKeysDocumented: every app.* key that phased -S prints for a
// config without an app section has a row in docs/apps.md's table of keys,
// whose default column says the value -S printed; and the table names no
// key -S does not print. The recipes' headings are there too.
func TestAppKeysDocumented(t *testing.T) {
	dir := t.TempDir()
	conf := e2e.WriteFile(t, dir, "phased.yaml", fmt.Sprintf("listen: [%q]\n", e2e.FreePort(t)))
	code, out, errOut := e2e.Run(t, dir, nil, "-f", conf, "-S")
	if code != 0 {
		t.Fatalf("phased -S: %d %s", code, errOut)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("phased -S is not YAML: %v\n%s", err, out)
	}
	app, ok := cfg["app"].(map[string]any)
	if !ok {
		t.Fatalf("phased -S has no app section:\n%s", out)
	}
	keys := map[string]string{}
	flatten("app", app, keys)
	if len(keys) < 15 {
		t.Fatalf("only %d app keys in -S: %v", len(keys), keys)
	}

	md, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "apps.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{} // key: its default column
	for _, m := range regexp.MustCompile("(?m)^\\| `(app\\.[a-z_.]+)` \\| ([^|]*) \\|").FindAllStringSubmatch(string(md), -1) {
		rows[m[1]] = strings.TrimSpace(m[2])
	}
	var names []string
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		col, ok := rows[k]
		switch {
		case !ok:
			t.Errorf("docs/apps.md has no row for %s (phased -S prints it, default %s)", k, keys[k])
		case col != "`"+keys[k]+"`":
			t.Errorf("docs/apps.md says %s defaults to %s; phased -S prints %s", k, col, keys[k])
		}
	}
	for k := range rows {
		if _, ok := keys[k]; !ok {
			t.Errorf("docs/apps.md documents %s, which phased -S does not print", k)
		}
	}
	for _, h := range []string{"## PHP (FastCGI)", "## CGI", "## Node", "## Python (gunicorn)", "## Ruby (puma, unicorn)", "## Perl (Starman)"} {
		if !regexp.MustCompile("(?m)^" + regexp.QuoteMeta(h) + "$").Match(md) {
			t.Errorf("docs/apps.md has no heading %q", h)
		}
	}
}
