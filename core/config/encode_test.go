package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// full is a configuration that sets a little of everything.
const full = `server_root: /srv/site
listen: ["127.0.0.1:8080", "[::1]:8443", ":0", ":0", {address: "127.0.0.1:8081", proxy_protocol: true}]
listen_backlog: 1024
pid_file: run/phased.pid
document_root: htdocs
directory_listing: true
user: www-data
group: www-data
double_start: false
graceful_shutdown_timeout: 1m30s
timeouts: {read_header: 2s, read: 1m, write: 2m, idle: 1h}
trusted_proxies: [10.0.0.0/8, "fd00::/8"]
real_ip_header: Forwarded
health: {liveness_path: /-/healthy, readiness_path: /-/ready, allow: [0.0.0.0/0], drain_delay: 5s}
error_log: {path: logs/error.log, level: notice, format: json}
access_log: {path: logs/access.log, format: json}
mpm:
  name: event
  threads_per_child: 25
  max_memory_per_child: 512M
  ratio: 0.75
  keep_start_servers: true
  nested: {b: [1, two], a: null}
app:
  command: [./bin/app, --flag]
  env: {DATABASE_URL: "postgres://db/app", A: "1", "true": "yes"}
hooks:
  - name: migrate
    phase: post-config
    exec: [./scripts/migrate.sh]
    order: first
    before: [warm]
  - name: warm
    phase: post-config
    plugin: ./bin/warm
    order: 15
    after: [migrate]
    timeout: 5m
    settings: {url: "http://127.0.0.1:9/", depth: 2, paths: [/a, /b]}
`

func loadFull(t *testing.T) *Config {
	t.Helper()
	c, err := load(LoadOptions{File: writeConfig(t, full)}, "/")
	if err != nil {
		t.Fatal(err)
	}
	c.File = ""
	return c
}

func TestJSONRoundTrip(t *testing.T) {
	for name, c := range map[string]*Config{"default": Default(), "full": loadFull(t)} {
		t.Run(name, func(t *testing.T) {
			b, err := c.JSON()
			if err != nil {
				t.Fatal(err)
			}
			back, err := FromJSON(b)
			if err != nil {
				t.Fatalf("FromJSON: %v\n%s", err, b)
			}
			if !reflect.DeepEqual(back, c) {
				t.Errorf("FromJSON(JSON()) =\n%#v\nwant\n%#v", back, c)
			}

			// The standard library's entry points do the same.
			std, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			var viaStd Config
			if err := json.Unmarshal(std, &viaStd); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(&viaStd, c) {
				t.Errorf("json.Unmarshal(json.Marshal()) =\n%#v\nwant\n%#v", &viaStd, c)
			}
		})
	}
}

func TestJSONShape(t *testing.T) {
	b, err := loadFull(t).JSON()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	eq(t, "graceful_shutdown_timeout", doc["graceful_shutdown_timeout"], any("1m30s"))
	eq(t, "mpm", doc["mpm"], any(map[string]any{
		"name": "event", "threads_per_child": 25.0, "max_memory_per_child": "512M", "ratio": 0.75,
		"keep_start_servers": true, "nested": map[string]any{"a": nil, "b": []any{1.0, "two"}},
	}))
	hook := doc["hooks"].([]any)[1].(map[string]any)
	eq(t, "hooks[1].timeout", hook["timeout"], any("5m"))
	eq(t, "hooks[1].order", hook["order"], any("15"))
	if _, ok := doc["File"]; ok {
		t.Error("JSON carries File")
	}
	// Keys in contract order.
	if i, j := bytes.Index(b, []byte(`"server_root"`)), bytes.Index(b, []byte(`"hooks"`)); i < 0 || j < i {
		t.Errorf("keys out of order:\n%s", b)
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	for name, c := range map[string]*Config{"default": Default(), "full": loadFull(t)} {
		t.Run(name, func(t *testing.T) {
			y, err := c.YAML()
			if err != nil {
				t.Fatal(err)
			}
			path := writeConfig(t, string(y))
			back, err := load(LoadOptions{File: path}, "/")
			if err != nil {
				t.Fatalf("loading YAML(): %v\n%s", err, y)
			}
			back.File = ""
			if !reflect.DeepEqual(back, c) {
				t.Errorf("Load(YAML()) =\n%#v\nwant\n%#v", back, c)
			}
		})
	}
}

// TestYAMLGolden pins what phased -S prints. Run with -update to rewrite.
func TestYAMLGolden(t *testing.T) {
	for _, name := range []string{"default", "full"} {
		t.Run(name, func(t *testing.T) {
			var c *Config
			if name == "full" {
				c = loadFull(t)
			} else {
				var err error
				if c, err = load(LoadOptions{}, "/srv/phased"); err != nil {
					t.Fatal(err)
				}
			}
			got, err := c.YAML()
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("YAML() differs from %s (run go test -update):\n%s", golden, got)
			}
		})
	}
}

func TestFromJSONErrors(t *testing.T) {
	valid, err := Default().JSON()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"syntax", `{"listen": [}`, "json: invalid character '}' looking for beginning of value"},
		{"not an object", `[1]`, "json: the document must be an object, got a list"},
		{"trailing data", string(valid) + "{}", "json: unexpected data after the configuration object"},
		{"unknown key", strings.Replace(string(valid), `"user"`, `"usr"`, 1), `json: unknown key "usr" (did you mean "user"?)`},
		{"invalid value", strings.Replace(string(valid), `"level": "info"`, `"level": "chatty"`, 1),
			`json: error_log.level: "chatty" is not one of debug, info, notice, warn, error`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromJSON([]byte(tt.in))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error = %v, want %s", err, tt.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("error %T is not an *Error", err)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 30 * time.Second: "30s", time.Minute: "1m", 90 * time.Second: "1m30s",
		time.Hour: "1h", 90 * time.Minute: "1h30m", 1500 * time.Millisecond: "1.5s", -time.Minute: "-1m",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
