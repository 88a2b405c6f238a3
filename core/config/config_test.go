package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/accesslog"
)

// writeConfig writes a config file named phased.yaml into a fresh temporary
// folder and returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "phased.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAccessLogFormatsAreTheSDKs: access_log.format takes exactly the
// names the children's access log knows.
func TestAccessLogFormatsAreTheSDKs(t *testing.T) {
	got := append([]string(nil), accessLogFormats...)
	want := accesslog.FormatNames()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("access_log.format takes %q; internal/accesslog knows %q", got, want)
	}
}

func TestDefault(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	c := Default()
	want := &Config{
		ServerRoot:              cwd,
		Listen:                  []Listener{{Address: "127.0.0.1:8080", AcceptFilter: "none"}},
		ListenBacklog:           511,
		PidFile:                 filepath.Join(cwd, "phased.pid"),
		ControlSocket:           filepath.Join(cwd, "phased.sock"),
		DocumentRoot:            filepath.Join(cwd, "public"),
		DoubleStart:             true,
		GracefulShutdownTimeout: 30 * time.Second,
		SIGTERM:                 "stop",
		TrustedProxies:          []string{},
		RealIPHeader:            "X-Forwarded-For",
		WorkerCPUAffinity:       "none",
		Health:                  Health{LivenessPath: "/livez", ReadinessPath: "/readyz", Allow: []string{"127.0.0.0/8", "::1/128"}},
		Timeouts:                Timeouts{ReadHeader: 10 * time.Second, Read: 60 * time.Second, Write: 60 * time.Second, Idle: 5 * time.Second, MinRate: 500},
		ErrorLog:                ErrorLog{Path: "stderr", Level: "info", Format: "auto"},
		AccessLog:               AccessLog{Path: "", Format: "combined"},
		Status:                  Status{Path: "/server-status", Allow: []string{"127.0.0.0/8", "::1/128"}, Metrics: "/metrics", SlowRequest: 5 * time.Second},
		MPM: MPM{Name: "worker", Settings: map[string]any{"start_servers": 2, "threads_per_child": 25,
			"min_spare_threads": 25, "max_spare_threads": 75, "max_request_workers": 150}},
		App: App{Type: AppStatic, Command: []string{}, Env: map[string]string{}, Listen: "socket", StartTimeout: time.Minute,
			StopSignal: "TERM", StopTimeout: 30 * time.Second, ReadTimeout: time.Minute, SendfilePaths: []string{}, MaxBodySize: 100 * MiB, BodyBufferSize: MiB, ResponseBufferSize: MiB,
			MaxTempFileSize: GiB, FastCGI: FastCGI{Index: []string{"index.php"}, Extensions: []string{".php"}},
			CGI: CGI{Paths: map[string]string{}, Timeout: time.Minute}},
		Hooks: []Hook{},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Default() =\n%+v\nwant\n%+v", c, want)
	}

	// Load with nothing is the same thing.
	l, err := Load(LoadOptions{})
	if err != nil {
		t.Fatalf("Load(empty): %v", err)
	}
	if !reflect.DeepEqual(l, want) {
		t.Errorf("Load(empty) =\n%+v\nwant\n%+v", l, want)
	}
}

// TestEmbeddedDefaultIsValid guards the promise that Default never panics:
// the embedded YAML parses, has only known keys and passes validation.
func TestEmbeddedDefaultIsValid(t *testing.T) {
	l, err := yamlLayer(kindDefault, "default", defaultYAML)
	if err != nil {
		t.Fatal(err)
	}
	if errs := checkLayer(l); len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	if _, err := load(LoadOptions{}, "/srv"); err != nil {
		t.Fatal(err)
	}
}

func TestPrecedence(t *testing.T) {
	tests := []struct {
		name      string
		file      string // "" for no file
		env       []string
		overrides []string
		check     func(t *testing.T, c *Config)
	}{
		{
			name: "default",
			check: func(t *testing.T, c *Config) {
				eq(t, "listen_backlog", c.ListenBacklog, 511)
			},
		},
		{
			name: "file over default",
			file: "listen_backlog: 100\n",
			check: func(t *testing.T, c *Config) {
				eq(t, "listen_backlog", c.ListenBacklog, 100)
				eq(t, "error_log.level", c.ErrorLog.Level, "info")
			},
		},
		{
			name: "env over file",
			file: "listen_backlog: 100\n",
			env:  []string{"PHASED_LISTEN_BACKLOG=200"},
			check: func(t *testing.T, c *Config) {
				eq(t, "listen_backlog", c.ListenBacklog, 200)
			},
		},
		{
			name:      "-c over env",
			file:      "listen_backlog: 100\n",
			env:       []string{"PHASED_LISTEN_BACKLOG=200"},
			overrides: []string{"listen_backlog=300"},
			check: func(t *testing.T, c *Config) {
				eq(t, "listen_backlog", c.ListenBacklog, 300)
			},
		},
		{
			name:      "last -c wins",
			overrides: []string{"listen_backlog=300", "listen_backlog=400"},
			check: func(t *testing.T, c *Config) {
				eq(t, "listen_backlog", c.ListenBacklog, 400)
			},
		},
		{
			name: "nested keys merge",
			file: "error_log:\n  level: debug\n",
			env:  []string{"PHASED_ERROR_LOG__FORMAT=json"},
			check: func(t *testing.T, c *Config) {
				eq(t, "error_log", c.ErrorLog, ErrorLog{Path: "stderr", Level: "debug", Format: "json"})
			},
		},
		{
			name:      "mpm settings merge and are typed",
			file:      "mpm:\n  threads_per_child: 25\n  start_servers: 3\n",
			env:       []string{"PHASED_MPM__START_SERVERS=4"},
			overrides: []string{"mpm.accept_mutex=flock", "mpm.keep_start_servers=true"},
			check: func(t *testing.T, c *Config) {
				eq(t, "mpm", c.MPM, MPM{Name: "worker", Settings: map[string]any{
					"threads_per_child": 25, "start_servers": 4, "accept_mutex": "flock", "keep_start_servers": true,
					"min_spare_threads": 25, "max_spare_threads": 75, "max_request_workers": 150,
				}})
			},
		},
		{
			name: "another mpm drops the default's settings",
			file: "mpm:\n  name: prefork\n  max_spare_servers: 10\n",
			check: func(t *testing.T, c *Config) {
				eq(t, "mpm", c.MPM, MPM{Name: "prefork", Settings: map[string]any{"max_spare_servers": 10}})
			},
		},
		{
			name: "mpm chosen by env drops the default's settings",
			env:  []string{"PHASED_MPM__NAME=event"},
			check: func(t *testing.T, c *Config) {
				eq(t, "mpm", c.MPM, MPM{Name: "event", Settings: map[string]any{}})
			},
		},
		{
			name: "a list replaces the list beneath",
			file: "listen: [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n",
			env:  []string{"PHASED_LISTEN=127.0.0.1:3"},
			check: func(t *testing.T, c *Config) {
				eq(t, "listen", c.ListenAddrs(), []string{"127.0.0.1:3"})
			},
		},
		{
			name: "env list splits on commas",
			env:  []string{"PHASED_LISTEN=127.0.0.1:1, [::1]:2,localhost:3"},
			check: func(t *testing.T, c *Config) {
				eq(t, "listen", c.ListenAddrs(), []string{"127.0.0.1:1", "[::1]:2", "localhost:3"})
			},
		},
		{
			name:      "-c list and bool and duration",
			overrides: []string{"listen=127.0.0.1:1,127.0.0.1:2", "double_start=false", "graceful_shutdown_timeout=1m30s", "directory_listing=true"},
			check: func(t *testing.T, c *Config) {
				eq(t, "listen", c.ListenAddrs(), []string{"127.0.0.1:1", "127.0.0.1:2"})
				eq(t, "double_start", c.DoubleStart, false)
				eq(t, "directory_listing", c.DirectoryListing, true)
				eq(t, "graceful_shutdown_timeout", c.GracefulShutdownTimeout, 90*time.Second)
			},
		},
		{
			name: "env app.env keeps the variable's case",
			env:  []string{"PHASED_APP__ENV__DATABASE_URL=postgres://x", "PHASED_APP__ENV__My__Var=1"},
			check: func(t *testing.T, c *Config) {
				eq(t, "app.env", c.App.Env, map[string]string{"DATABASE_URL": "postgres://x", "My__Var": "1"})
			},
		},
		{
			name: "env is case-insensitive and ignores other prefixes",
			env:  []string{"PHASED_error_log__LEVEL=warn", "HOME=/root", "PHASEDX=1", "NOT_PHASED_LISTEN=1"},
			check: func(t *testing.T, c *Config) {
				eq(t, "error_log.level", c.ErrorLog.Level, "warn")
			},
		},
		{
			name: "hook defaults",
			file: "hooks:\n  - name: migrate\n    phase: post-config\n    exec: [migrate]\n  - name: warm\n    phase: post-config\n    exec: [warm]\n    order: 5\n    timeout: 2m\n",
			check: func(t *testing.T, c *Config) {
				eq(t, "hooks", c.Hooks, []Hook{
					{Name: "migrate", Phase: "post-config", Exec: []string{"migrate"}, Order: "middle", Before: []string{}, After: []string{}, Timeout: 30 * time.Second},
					{Name: "warm", Phase: "post-config", Exec: []string{"warm"}, Order: "5", Before: []string{}, After: []string{}, Timeout: 2 * time.Minute},
				})
			},
		},
		{
			name: "empty file is the default",
			file: "# nothing\n",
			check: func(t *testing.T, c *Config) {
				eq(t, "listen", c.ListenAddrs(), []string{"127.0.0.1:8080"})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := LoadOptions{Env: tt.env, Overrides: tt.overrides}
			if tt.file != "" {
				opts.File = writeConfig(t, tt.file)
			}
			c, err := load(opts, t.TempDir())
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

// TestErrors checks the exact text users see. "{file}" stands for the
// config file's absolute path.
func TestErrors(t *testing.T) {
	tests := []struct {
		name      string
		file      string
		env       []string
		overrides []string
		want      []string // every line of the joined error, in order
	}{
		// Unknown keys, from every source.
		{
			name: "unknown key in file",
			file: "listn: [\":80\"]\n",
			want: []string{`{file}: unknown key "listn" (did you mean "listen"?)`},
		},
		{
			name: "unknown nested key in file",
			file: "error_log:\n  levl: debug\n",
			want: []string{`{file}: unknown key "error_log.levl" (did you mean "level"?)`},
		},
		{
			name: "unknown key in hook entry",
			file: "hooks:\n  - name: a\n    phase: configure\n    exec: [x]\n  - name: b\n    phase: configure\n    exce: [x]\n",
			want: []string{`{file}: unknown key "hooks[1].exce" (did you mean "exec"?)`},
		},
		{
			name: "unknown key with no near match",
			file: "frobnicate: 1\n",
			want: []string{`{file}: unknown key "frobnicate"`},
		},
		{
			name: "keys are case-sensitive in files",
			file: "Listen: [\":80\"]\n",
			want: []string{`{file}: unknown key "Listen" (did you mean "listen"?)`},
		},
		{
			name: "unknown key in env",
			env:  []string{"PHASED_LISTN=:80"},
			want: []string{`environment PHASED_LISTN: unknown key "listn" (did you mean "listen"?)`},
		},
		{
			name: "unknown nested key in env",
			env:  []string{"PHASED_TIMEOUTS__IDEL=1s"},
			want: []string{`environment PHASED_TIMEOUTS__IDEL: unknown key "timeouts.idel" (did you mean "idle"?)`},
		},
		{
			name: "unknown key under an unknown parent, one error per variable",
			env:  []string{"PHASED_FOO__A=1", "PHASED_FOO__B=2"},
			want: []string{
				`environment PHASED_FOO__A: unknown key "foo"`,
				`environment PHASED_FOO__B: unknown key "foo"`,
			},
		},
		{
			name:      "unknown key in -c",
			overrides: []string{"listn=:80"},
			want:      []string{`-c listn=:80: unknown key "listn" (did you mean "listen"?)`},
		},
		{
			name: "unknown keys from several sources, lowest layer first",
			file: "user: x\nlisten_backlogg: 1\n",
			env:  []string{"PHASED_PIDFILE=x"},
			overrides: []string{
				"mpm.name=worker", "mpm.anything=goes", "app.env.X=1", "app.commands=x",
			},
			want: []string{
				`{file}: unknown key "listen_backlogg" (did you mean "listen_backlog"?)`,
				`environment PHASED_PIDFILE: unknown key "pidfile" (did you mean "pid_file"?)`,
				`-c app.commands=x: unknown key "app.commands" (did you mean "command"?)`,
			},
		},

		// Values that cannot become their type.
		{
			name: "bad duration",
			file: "graceful_shutdown_timeout: 3x\n",
			want: []string{`{file}: graceful_shutdown_timeout: invalid duration "3x"`},
		},
		{
			name: "duration without unit",
			file: "timeouts:\n  idle: 30\n",
			want: []string{`{file}: timeouts.idle: invalid duration 30 (missing unit, as in "30s")`},
		},
		{
			name: "bad hook timeout",
			file: "hooks:\n  - name: a\n    phase: configure\n    exec: [x]\n    timeout: soon\n",
			want: []string{`{file}: hooks[0].timeout: invalid duration "soon"`},
		},
		{
			name: "not an integer",
			env:  []string{"PHASED_LISTEN_BACKLOG=many"},
			want: []string{`environment PHASED_LISTEN_BACKLOG: listen_backlog: expected an integer, got "many"`},
		},
		{
			name: "fraction for an integer",
			file: "listen_backlog: 1.5\n",
			want: []string{`{file}: listen_backlog: expected an integer, got 1.5`},
		},
		{
			name:      "not a boolean",
			overrides: []string{"double_start=perhaps"},
			want:      []string{`-c double_start=perhaps: double_start: expected true or false, got "perhaps"`},
		},
		{
			name: "tls without certificates",
			file: "listen:\n  - {address: \"127.0.0.1:8443\", tls: {min_version: \"1.2\"}}\n",
			want: []string{`{file}: listen[0].tls: needs certificates (cert and key files) or acme`},
		},
		{
			name: "tls bad version and cipher",
			file: "listen:\n  - address: 127.0.0.1:8443\n    tls: {certificates: [{cert: a.crt, key: a.key}], min_version: \"1.0\", ciphers: [TLS_RSA_WITH_RC4_128_SHA]}\n",
			want: []string{
				`{file}: listen[0].tls.min_version: "1.0" is not one of 1.2, 1.3`,
				`{file}: listen[0].tls.ciphers[0]: "TLS_RSA_WITH_RC4_128_SHA" is not a TLS 1.2 cipher suite Go offers securely (as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)`,
			},
		},
		{
			name: "tls certificate without key",
			file: "listen:\n  - {address: \"127.0.0.1:8443\", tls: {certificates: [{cert: a.crt}]}}\n",
			want: []string{`{file}: listen[0].tls.certificates[0].key: must not be empty`},
		},
		{
			name: "options on the wrong kind of listener",
			file: "listen:\n  - {address: \"127.0.0.1:8080\", http2: false}\n  - {address: \"127.0.0.1:8443\", h2c: true, redirect_https: \"443\", tls: {certificates: [{cert: a, key: b}]}}\n",
			want: []string{
				`{file}: listen[0].http2: is for TLS listeners (plain HTTP/2 is h2c)`,
				`{file}: listen[1].h2c: is for plain listeners (HTTP/2 over TLS is http2)`,
				`{file}: listen[1].redirect_https: is for plain listeners`,
			},
		},
		{
			name: "acme without names",
			file: "listen:\n  - {address: \"127.0.0.1:8443\", tls: {acme: {email: a@b.c}}}\n",
			want: []string{`{file}: listen[0].tls.acme.names: needs at least one host name`},
		},
		{
			name: "duplicate address in a mapping",
			file: "listen:\n  - 127.0.0.1:8443\n  - {address: \"127.0.0.1:8443\", tls: {certificates: [{cert: a, key: b}]}}\n",
			want: []string{`{file}: listen[1].address: "127.0.0.1:8443": duplicate of listen[0]`},
		},
		{
			name: "app type unknown",
			file: "app: {type: rails}\n",
			want: []string{`{file}: app.type: "rails" is not one of static, go, http, fastcgi, cgi`},
		},
		{
			name: "http app without a command",
			file: "app: {type: http}\n",
			want: []string{`{file}: app.type: http needs app.command, the app server's command (gunicorn, puma, node ...)`},
		},
		{
			name: "static app with a command",
			file: "app: {type: static, command: [gunicorn]}\n",
			want: []string{`{file}: app.command: type static runs no command; set app.type to go, http or fastcgi to run one`},
		},
		{
			name: "socket placeholder with a port",
			file: "app: {type: http, listen: port, command: [gunicorn, --bind, \"unix:{socket}\"]}\n",
			want: []string{`{file}: app.command[2]: {socket} is for app.listen: socket; with listen: port use {port} (or $PORT)`},
		},
		{
			name: "port placeholder with a socket",
			file: "app: {type: http, command: [node, app.js, \"{port}\"]}\n",
			want: []string{`{file}: app.command[2]: {port} is for app.listen: port; with listen: socket use {socket} (or $PHASED_APP_SOCKET)`},
		},
		{
			name: "unknown placeholder",
			file: "app: {type: http, command: [puma, -b, \"unix://{sock}\"]}\n",
			want: []string{`{file}: app.command[2]: unknown placeholder {sock} (known: {socket}, {port}, {threads}, {slot}, {generation})`},
		},
		{
			name: "placeholder as the program",
			file: "app: {type: http, command: [\"{socket}\"]}\n",
			want: []string{`{file}: app.command[0]: the program itself cannot be a placeholder`},
		},
		{
			name: "fastcgi with neither",
			file: "app: {type: fastcgi}\n",
			want: []string{`{file}: app.type: fastcgi needs app.command (php-cgi -b {socket}) or app.fastcgi.address`},
		},
		{
			name: "fastcgi with both",
			file: "app: {type: fastcgi, command: [php-cgi, -b, \"{socket}\"], fastcgi: {address: \"127.0.0.1:9000\"}}\n",
			want: []string{`{file}: app.fastcgi.address: type fastcgi takes a command or an address, not both`},
		},
		{
			name: "fastcgi bad extension",
			file: "app: {type: fastcgi, fastcgi: {address: \"127.0.0.1:9000\", extensions: [php]}}\n",
			want: []string{`{file}: app.fastcgi.extensions[0]: "php" is not an extension, as .php`},
		},
		{
			name: "cgi without paths",
			file: "app: {type: cgi}\n",
			want: []string{`{file}: app.type: cgi needs app.cgi.paths: at least one URL prefix and its folder, as {"/cgi-bin/": "cgi-bin"}`},
		},
		{
			name: "bad stop signal",
			file: "app: {type: http, command: [x], stop_signal: KILL}\n",
			want: []string{`{file}: app.stop_signal: "KILL" is not one of TERM, INT, QUIT, HUP, USR1, USR2, WINCH`},
		},
		{
			name: "bad size",
			file: "app: {max_body_size: 10MB2}\n",
			want: []string{`{file}: app.max_body_size: invalid size "10MB2" (a number of bytes, or with a unit: 64K, 100M, 1G)`},
		},
		{
			name: "health check not a path",
			file: "app: {type: http, command: [x], health_check: health}\n",
			want: []string{`{file}: app.health_check: "health" must be a path starting with / (or empty)`},
		},
		{
			name: "scalar for a section",
			file: "error_log: stderr\n",
			want: []string{`{file}: error_log: expected a mapping, got "stderr"`},
		},
		{
			name: "hooks not a list",
			env:  []string{"PHASED_HOOKS=migrate"},
			want: []string{`environment PHASED_HOOKS: hooks: expected a list, got "migrate"`},
		},
		{
			name: "list entry of the wrong type",
			file: "listen:\n  - 127.0.0.1:80\n  - {host: x}\n",
			want: []string{`{file}: unknown key "listen[1].host"`},
		},

		// Validation, attributed to the layer that set the key.
		{
			name: "backlog out of range from env",
			env:  []string{"PHASED_LISTEN_BACKLOG=0"},
			want: []string{`environment PHASED_LISTEN_BACKLOG: listen_backlog: must be between 1 and 65535, got 0`},
		},
		{
			name: "negative connection limit and rate",
			file: "worker_connections: -1\ntimeouts: {min_rate: -5}\n",
			want: []string{
				`{file}: timeouts.min_rate: must be 0 (off) or more bytes a second, got -5`,
				`{file}: worker_connections: must be 0 (from the descriptor limit) or more, got -1`,
			},
		},
		{
			name:      "CPU affinity not a list, from -c",
			overrides: []string{"worker_cpu_affinity=0-1 x"},
			want:      []string{`-c worker_cpu_affinity=0-1 x: worker_cpu_affinity: must be none, auto or a CPU list per child slot ("0-3 4-7"): "x" is not a CPU list ("x" is not a CPU number; write CPUs as 0-3,8)`},
		},
		{
			name: "port out of range",
			file: "listen: [\"127.0.0.1:80\", \"127.0.0.1:99999\"]\n",
			want: []string{`{file}: listen[1]: "127.0.0.1:99999": port out of range`},
		},
		{
			name: "missing port",
			file: "listen: [\"127.0.0.1\"]\n",
			want: []string{`{file}: listen[0]: "127.0.0.1": missing port, as in "127.0.0.1:8080"`},
		},
		{
			name: "empty port",
			file: "listen: [\"localhost:\"]\n",
			want: []string{`{file}: listen[0]: "localhost:": missing port, as in "127.0.0.1:8080"`},
		},
		{
			name: "port not a number",
			file: "listen: [\"localhost:http\"]\n",
			want: []string{`{file}: listen[0]: "localhost:http": port "http" is not a number`},
		},
		{
			name: "empty address",
			file: "listen: [\"\"]\n",
			want: []string{`{file}: listen[0]: empty address`},
		},
		{
			name: "no address at all",
			env:  []string{"PHASED_LISTEN="},
			want: []string{`environment PHASED_LISTEN: listen: needs at least one address`},
		},
		{
			name: "ipv6 without brackets",
			file: "listen: [\"::1:80\"]\n",
			want: []string{`{file}: listen[0]: "::1:80": an IPv6 address needs brackets, as in "[::1]:8080"`},
		},
		{
			name: "ipv4 in brackets",
			file: "listen: [\"[127.0.0.1]:80\"]\n",
			want: []string{`{file}: listen[0]: "[127.0.0.1]:80": "127.0.0.1" is not an IPv6 address (only IPv6 addresses go in brackets)`},
		},
		{
			name: "bad ipv4",
			file: "listen: [\"256.1.1.1:80\"]\n",
			want: []string{`{file}: listen[0]: "256.1.1.1:80": "256.1.1.1" is not a valid IPv4 address`},
		},
		{
			name: "bad host name",
			file: "listen: [\"exa mple:80\"]\n",
			want: []string{`{file}: listen[0]: "exa mple:80": "exa mple" is not a valid host name`},
		},
		{
			name: "duplicate listen",
			file: "listen: [\"127.0.0.1:80\", \"[::1]:80\", \"127.0.0.1:80\", \"[0:0::1]:80\"]\n",
			want: []string{
				`{file}: listen[2]: "127.0.0.1:80": duplicate of listen[0]`,
				`{file}: listen[3]: "[0:0::1]:80": duplicate of listen[1] "[::1]:80"`,
			},
		},
		{
			name: "bad level and formats",
			file: "error_log:\n  level: verbose\n  format: xml\naccess_log:\n  format: fancy\n",
			want: []string{
				`{file}: error_log.level: "verbose" is not one of debug, info, notice, warn, error`,
				`{file}: error_log.format: "xml" is not one of auto, text, json`,
				`{file}: access_log.format: "fancy" is not one of common, combined, json, common_duration, combined_duration`,
			},
		},
		{
			name: "non-positive durations",
			file: "graceful_shutdown_timeout: 0s\ntimeouts:\n  read: -1s\napp:\n  read_timeout: -1s\n",
			want: []string{
				`{file}: graceful_shutdown_timeout: must be greater than 0, got 0s`,
				`{file}: timeouts.read: must be greater than 0, got -1s`,
				`{file}: app.read_timeout: must not be negative (0: no bound), got -1s`,
			},
		},
		{
			name: "sendfile paths",
			file: "app:\n  sendfile_paths: [/]\n",
			want: []string{
				`{file}: app.sendfile_paths: is for apps that answer with headers of their own (type http or fastcgi)`,
				`{file}: app.sendfile_paths: "/" would let the app send any file: name the folders it may`,
			},
		},
		{
			name: "health, trusted proxies and the real-IP header",
			file: "health:\n  liveness_path: livez\n  readiness_path: /server-status\n  allow: [10.0.0.1]\n  drain_delay: -1s\n" +
				"trusted_proxies: [\"10.0.0.0/8\", \"lb\"]\nreal_ip_header: X-Client-IP\n",
			want: []string{
				`{file}: health.liveness_path: "livez" must start with / (or be empty to turn it off)`,
				`{file}: health.readiness_path: "/server-status" is already status.path`,
				`{file}: health.allow[0]: "10.0.0.1" is not a network in CIDR form (such as 10.0.0.0/8 or ::1/128)`,
				`{file}: health.drain_delay: must not be negative, got -1s`,
				`{file}: trusted_proxies[1]: "lb" is not a network in CIDR form (such as 10.0.0.0/8 or ::1/128)`,
				`{file}: real_ip_header: "X-Client-IP" is not one of X-Forwarded-For, Forwarded, X-Real-IP`,
			},
		},
		{
			name:      "health paths from the environment and -c",
			env:       []string{"PHASED_HEALTH__DRAIN_DELAY=soon"},
			overrides: []string{"health.liveness_path=/metrics"},
			want: []string{
				`environment PHASED_HEALTH__DRAIN_DELAY: health.drain_delay: invalid duration "soon"`,
			},
		},
		{
			name:      "a health path clashing with metrics",
			overrides: []string{"health.liveness_path=/metrics"},
			want:      []string{`-c health.liveness_path=/metrics: health.liveness_path: "/metrics" is already status.metrics`},
		},
		{
			name: "accept_filter is data or none",
			file: "listen: [{address: \"127.0.0.1:8080\", accept_filter: httpready}]\n",
			want: []string{`{file}: listen[0].accept_filter: "httpready" is not one of data, none`},
		},
		{
			name: "proxy_protocol is a boolean",
			file: "listen: [{address: \"127.0.0.1:8080\", proxy_protocol: maybe}]\n",
			want: []string{`{file}: listen[0].proxy_protocol: expected true or false, got "maybe"`},
		},
		{
			name:      "unknown mpm",
			overrides: []string{"mpm.name=threaded"},
			want:      []string{`-c mpm.name=threaded: mpm.name: "threaded" is not prefork, worker or event; a third-party MPM is given by a path containing "/", as in "./bin/my-mpm"`},
		},
		{
			name: "empty mpm name",
			env:  []string{"PHASED_MPM__NAME="},
			want: []string{`environment PHASED_MPM__NAME: mpm.name: must not be empty (prefork, worker, event or the path of an MPM plugin)`},
		},
		{
			name:      "empty pid file and document root",
			overrides: []string{"pid_file=", "document_root="},
			want: []string{
				`-c pid_file=: pid_file: must not be empty`,
				`-c document_root=: document_root: must not be empty`,
			},
		},
		{
			name: "hook validation",
			file: `hooks:
  - name: ""
    phase: configure
    exec: [a]
  - name: dup
    phase: configure
    plugin: ./p
  - name: dup
    phase: startup
    exec: [b]
  - name: neither
    phase: shutdown
  - name: both
    phase: child-init
    exec: [c]
    plugin: ./p
  - name: nophase
    exec: [d]
  - name: negative
    phase: child-exit
    exec: [e]
    timeout: -1s
`,
			want: []string{
				`{file}: hooks[0].name: must not be empty`,
				`{file}: hooks[2].name: duplicate hook name "dup" (also hooks[1])`,
				`{file}: hooks[2].phase: "startup" is not one of configure, open-logs, post-config, child-init, child-exit, shutdown`,
				`{file}: hooks[3]: needs exec (a command) or plugin (a hook plugin's path)`,
				`{file}: hooks[4]: has both exec and plugin; a hook is one or the other`,
				`{file}: hooks[5].phase: must be one of configure, open-logs, post-config, child-init, child-exit, shutdown`,
				`{file}: hooks[6].timeout: must not be negative, got -1s`,
			},
		},
		{
			name: "value set in file, overridden by env: env is blamed",
			file: "error_log:\n  level: debug\n",
			env:  []string{"PHASED_ERROR_LOG__LEVEL=loud"},
			want: []string{`environment PHASED_ERROR_LOG__LEVEL: error_log.level: "loud" is not one of debug, info, notice, warn, error`},
		},
		{
			name:      "control socket too long",
			overrides: []string{"pid_file=/" + strings.Repeat("x", 120) + ".pid"},
			want: []string{`-c pid_file=/` + strings.Repeat("x", 120) + `.pid: pid_file: control socket "/` + strings.Repeat("x", 120) +
				`.sock" is too long for a unix socket (126 bytes, at most 107); set control_socket to a shorter path`},
		},

		// Malformed sources.
		{
			name: "env name with empty key",
			env:  []string{"PHASED_MPM____X=1", "PHASED_=1"},
			want: []string{
				`environment PHASED_MPM____X: empty key between "__" separators`,
				`environment PHASED_: no key after PHASED_`,
			},
		},
		{
			name: "env sets a key and a key inside it",
			env:  []string{"PHASED_MPM=worker", "PHASED_MPM__NAME=event"},
			want: []string{`environment PHASED_MPM: mpm: conflicts with PHASED_MPM__NAME, which sets a key inside it`},
		},
		{
			name: "same key twice in env",
			env:  []string{"PHASED_USER=a", "PHASED_user=b"},
			want: []string{`environment PHASED_user: user: also set by PHASED_USER`},
		},
		{
			name:      "malformed -c",
			overrides: []string{"listen", "=x", "mpm..name=x"},
			want: []string{
				`-c listen: expected key=value, as in -c mpm.start_servers=4`,
				`-c =x: expected key=value, as in -c mpm.start_servers=4`,
				`-c mpm..name=x: key "mpm..name" has an empty part`,
			},
		},
		{
			name: "yaml syntax error names the line",
			file: "listen:\n  - a\n bad: [\n",
			want: []string{`{file}: line 2: did not find expected key`},
		},
		{
			name: "yaml duplicate key",
			file: "user: a\nuser: b\n",
			want: []string{`{file}: line 2: mapping key "user" already defined at line 1`},
		},
		{
			name: "yaml document not a mapping",
			file: "- a\n- b\n",
			want: []string{`{file}: the document must be a mapping of keys to values, got a list`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := LoadOptions{Env: tt.env, Overrides: tt.overrides}
			if tt.file != "" {
				opts.File = writeConfig(t, tt.file)
			}
			_, err := load(opts, t.TempDir())
			if err == nil {
				t.Fatal("load succeeded, want an error")
			}
			want := strings.ReplaceAll(strings.Join(tt.want, "\n"), "{file}", opts.File)
			if got := err.Error(); got != want {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("error %T is not an *Error", err)
			}
		})
	}
}

func TestErrorFields(t *testing.T) {
	path := writeConfig(t, "listn: 1\nlisten_backlog: 0\n")
	_, err := load(LoadOptions{File: path}, "/")
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not an *Error", err)
	}
	eq(t, "Source", ce.Source, path)
	eq(t, "Key", ce.Key, "listn")
	if !errors.Is(err, ErrUnknownKey) {
		t.Errorf("errors.Is(err, ErrUnknownKey) = false for %v", err)
	}

	_, err = load(LoadOptions{Overrides: []string{"listen_backlog=0"}}, "/")
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not an *Error", err)
	}
	eq(t, "Error", *ce, Error{Source: "-c listen_backlog=0", Key: "listen_backlog", Msg: "must be between 1 and 65535, got 0"})
	if errors.Is(err, ErrUnknownKey) {
		t.Errorf("errors.Is(err, ErrUnknownKey) = true for %v", err)
	}
}

func TestFileErrors(t *testing.T) {
	dir := t.TempDir()
	t.Run("missing", func(t *testing.T) {
		_, err := load(LoadOptions{File: "nope.yaml"}, dir)
		want := "open " + filepath.Join(dir, "nope.yaml") + ": no such file or directory"
		if err == nil || err.Error() != want {
			t.Fatalf("error = %v, want %s", err, want)
		}
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("errors.Is(err, os.ErrNotExist) = false")
		}
	})
	t.Run("unreadable", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root reads any file")
		}
		path := filepath.Join(dir, "secret.yaml")
		if err := os.WriteFile(path, nil, 0o000); err != nil {
			t.Fatal(err)
		}
		_, err := load(LoadOptions{File: path}, dir)
		want := "open " + path + ": permission denied"
		if err == nil || err.Error() != want {
			t.Fatalf("error = %v, want %s", err, want)
		}
	})
}

func TestReservedEnv(t *testing.T) {
	env := []string{
		"PHASED_PHASE=configure", "PHASED_PASS=1", "PHASED_GENERATION=3", "PHASED_DRY_RUN=true",
		"PHASED_CONFIG=/tmp/c.json", "PHASED_SLOT=4", "PHASED_TEST_HELPER=crash",
		"PHASED_CHILD_FDS=3", "PHASED_INTERNAL_UPGRADE=1",
	}
	c, err := load(LoadOptions{Env: env}, "/")
	if err != nil {
		t.Fatalf("reserved names were read as config: %v", err)
	}
	eq(t, "listen", c.ListenAddrs(), []string{"127.0.0.1:8080"})

	for _, name := range []string{"PHASED_PHASE", "PHASED_CONFIG", "PHASED_TEST_X", "PHASED_CHILD_", "PHASED_INTERNAL_Y"} {
		if !IsReservedEnv(name) {
			t.Errorf("IsReservedEnv(%q) = false", name)
		}
	}
	for _, name := range []string{"PHASED_LISTEN", "PHASED_PHASES", "PHASED_CONFIG_FILE", "PHASED_TEST", "PHASE"} {
		if IsReservedEnv(name) {
			t.Errorf("IsReservedEnv(%q) = true", name)
		}
	}
}

func TestPaths(t *testing.T) {
	cwd := "/home/me"
	tests := []struct {
		name      string
		file      string // written to <tmp>/etc/phased.yaml when not ""
		overrides []string
		want      func(dir string) *Config // dir: the temp dir holding etc/
		check     func(t *testing.T, c *Config, dir string)
	}{
		{
			name: "server root defaults to the file's folder",
			file: "hooks:\n  - name: p\n    phase: configure\n    plugin: bin/hook\n",
			check: func(t *testing.T, c *Config, dir string) {
				root := filepath.Join(dir, "etc")
				eq(t, "server_root", c.ServerRoot, root)
				eq(t, "pid_file", c.PidFile, filepath.Join(root, "phased.pid"))
				eq(t, "control_socket", c.ControlSocket, filepath.Join(root, "phased.sock"))
				eq(t, "document_root", c.DocumentRoot, filepath.Join(root, "public"))
				eq(t, "hooks[0].plugin", c.Hooks[0].Plugin, filepath.Join(root, "bin/hook"))
			},
		},
		{
			name: "relative server root in the file is taken from the file's folder",
			file: `server_root: ..
pid_file: run/phased.pid
document_root: /var/www
error_log: {path: logs/error.log}
access_log: {path: logs/access.log}
mpm: {name: ./bin/my-mpm}
app: {command: [./bin/app, --port, "1"]}
hooks:
  - {name: a, phase: configure, exec: [./scripts/a.sh, ./arg]}
  - {name: b, phase: configure, exec: [sh, -c, true]}
  - {name: c, phase: configure, plugin: /opt/hook}
`,
			check: func(t *testing.T, c *Config, dir string) {
				eq(t, "server_root", c.ServerRoot, dir)
				eq(t, "pid_file", c.PidFile, filepath.Join(dir, "run/phased.pid"))
				eq(t, "control_socket", c.ControlSocket, filepath.Join(dir, "run/phased.sock"))
				eq(t, "document_root", c.DocumentRoot, "/var/www")
				eq(t, "error_log.path", c.ErrorLog.Path, filepath.Join(dir, "logs/error.log"))
				eq(t, "access_log.path", c.AccessLog.Path, filepath.Join(dir, "logs/access.log"))
				eq(t, "mpm.name", c.MPM.Name, filepath.Join(dir, "bin/my-mpm"))
				eq(t, "app.command", c.App.Command, []string{filepath.Join(dir, "bin/app"), "--port", "1"})
				eq(t, "hooks[0].exec", c.Hooks[0].Exec, []string{filepath.Join(dir, "scripts/a.sh"), "./arg"})
				eq(t, "hooks[1].exec", c.Hooks[1].Exec, []string{"sh", "-c", "true"})
				eq(t, "hooks[2].plugin", c.Hooks[2].Plugin, "/opt/hook")
			},
		},
		{
			name:      "relative server root from -c is taken from the working directory",
			file:      "pid_file: phased.pid\n",
			overrides: []string{"server_root=site", "error_log.path=stdout", "access_log.path=stderr"},
			check: func(t *testing.T, c *Config, dir string) {
				eq(t, "server_root", c.ServerRoot, "/home/me/site")
				eq(t, "pid_file", c.PidFile, "/home/me/site/phased.pid")
				eq(t, "error_log.path", c.ErrorLog.Path, "stdout")
				eq(t, "access_log.path", c.AccessLog.Path, "stderr")
			},
		},
		{
			name: "no file: the working directory",
			check: func(t *testing.T, c *Config, dir string) {
				eq(t, "server_root", c.ServerRoot, cwd)
				eq(t, "pid_file", c.PidFile, "/home/me/phased.pid")
				eq(t, "access_log.path", c.AccessLog.Path, "")
			},
		},
		{
			name:      "control socket from a pid file without extension",
			overrides: []string{"pid_file=/run/phased"},
			check: func(t *testing.T, c *Config, dir string) {
				eq(t, "control_socket", c.ControlSocket, "/run/phased.sock")
			},
		},
		{
			name:      "explicit control socket",
			overrides: []string{"control_socket=ctl/phased.ctl"},
			check: func(t *testing.T, c *Config, dir string) {
				eq(t, "control_socket", c.ControlSocket, "/home/me/ctl/phased.ctl")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := LoadOptions{Overrides: tt.overrides}
			if tt.file != "" {
				if err := os.Mkdir(filepath.Join(dir, "etc"), 0o755); err != nil {
					t.Fatal(err)
				}
				opts.File = filepath.Join(dir, "etc", "phased.yaml")
				if err := os.WriteFile(opts.File, []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c, err := load(opts, cwd)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "File", c.File, opts.File)
			tt.check(t, c, dir)
		})
	}
}

// TestLoadRelativeFile uses the real working directory, as phased -f does.
func TestLoadRelativeFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "site.yaml"), []byte("pid_file: x.pid\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	c, err := Load(LoadOptions{File: "site.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "File", c.File, filepath.Join(dir, "site.yaml"))
	eq(t, "pid_file", c.PidFile, filepath.Join(dir, "x.pid"))
}

// TestTLSListener: a listen entry may be a mapping with TLS; its files are
// made absolute, its defaults filled, and -S writes plain entries as
// plain addresses and the others as mappings.
func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "phased.yaml")
	os.WriteFile(path, []byte(`listen:
  - 127.0.0.1:8080
  - address: 127.0.0.1:8443
    tls:
      certificates: [{cert: certs/site.crt, key: certs/site.key}]
      acme: {names: [example.test], storage: state/acme}
`), 0o644)
	c, err := Load(LoadOptions{File: path})
	if err != nil {
		t.Fatal(err)
	}
	l := c.Listen[1]
	if l.TLS == nil || l.TLS.MinVersion != "1.2" || !l.HTTP2On() || c.Listen[0].HTTP2On() {
		t.Fatalf("listen[1] = %+v", l)
	}
	if crt := l.TLS.Certificates[0]; crt.Cert != filepath.Join(dir, "certs/site.crt") || crt.Key != filepath.Join(dir, "certs/site.key") {
		t.Errorf("certificate files %+v", crt)
	}
	if a := l.TLS.ACME; a.Storage != filepath.Join(dir, "state/acme") || a.Directory != LetsEncrypt || a.Challenge != "tls-alpn-01" || a.RenewBefore != 0 {
		t.Errorf("acme %+v", a)
	}
	y, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(y), "listen:\n  - 127.0.0.1:8080\n  - address: 127.0.0.1:8443\n    tls:\n") {
		t.Errorf("-S writes listen as:\n%s", y)
	}
	// What -S writes, the master's JSON round trip reads back the same.
	j, _ := c.JSON()
	back, err := FromJSON(j)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Listen, c.Listen) {
		t.Errorf("JSON round trip: %+v, want %+v", back.Listen, c.Listen)
	}
}

// TestControlSocketOfABrokenFile: the control socket is found from
// server_root, pid_file and control_socket alone, whatever else is wrong.
func TestControlSocketOfABrokenFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "phased.yaml")
	os.WriteFile(file, []byte("server_root: "+dir+"\npid_file: run/x.pid\nbogus_key: 1\nmpm: {name: 3}\n"), 0o644)
	if _, err := Load(LoadOptions{File: file}); err == nil {
		t.Fatal("Load accepted a broken file")
	}
	sock, err := ControlSocket(LoadOptions{File: file})
	if want := filepath.Join(dir, "run/x.sock"); err != nil || sock != want {
		t.Fatalf("ControlSocket = %q, %v; want %q", sock, err, want)
	}
	os.WriteFile(file, []byte("server_root: [\n"), 0o644)
	if _, err := ControlSocket(LoadOptions{File: file}); err == nil {
		t.Fatal("ControlSocket of a file that is not YAML did not fail")
	}
}
