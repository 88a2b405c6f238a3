package config

import (
	"fmt"
	"regexp"
	"strings"
)

// AppTypes are the values app.type takes.
var AppTypes = []string{AppStatic, AppGo, AppHTTP, AppFastCGI, AppCGI}

// StopSignals are the values app.stop_signal takes.
var StopSignals = []string{"TERM", "INT", "QUIT", "HUP", "USR1", "USR2", "WINCH"}

// Placeholders are what an app server's command may say, and when.
var placeholderRe = regexp.MustCompile(`\{[a-z_]*\}`)

// finishApp fills app's derived values: its type, absolute paths.
func (c *Config) finishApp() {
	a := &c.App
	a.Command = c.command(a.Command)
	if a.Env == nil {
		a.Env = map[string]string{}
	}
	if a.Type == "" {
		a.Type = AppStatic
		if len(a.Command) > 0 {
			a.Type = AppGo
		}
	}
	if a.FastCGI.Index == nil {
		a.FastCGI.Index = []string{}
	}
	if a.FastCGI.Extensions == nil {
		a.FastCGI.Extensions = []string{}
	}
	if p, ok := strings.CutPrefix(a.FastCGI.Address, "unix:"); ok && p != "" {
		a.FastCGI.Address = "unix:" + c.abs(p)
	}
	paths := make(map[string]string, len(a.CGI.Paths))
	for prefix, dir := range a.CGI.Paths {
		paths[prefix] = c.abs(dir)
	}
	a.CGI.Paths = paths
}

// validateApp checks the app section; every error names its key.
func (c *Config) validateApp(v *validator) {
	a := c.App
	v.oneOf("app.type", a.Type, AppTypes)
	for _, name := range sortedKeys(a.Env) {
		if name == "" || strings.ContainsAny(name, "=\x00") {
			v.errorf("app.env", "invalid variable name %q", name)
		}
	}
	if len(a.Command) > 0 && a.Command[0] == "" {
		v.errorf("app.command[0]", "must not be empty")
	}
	switch a.Type {
	case AppStatic, AppCGI:
		if len(a.Command) > 0 {
			v.errorf("app.command", "type %s runs no command; set app.type to go, http or fastcgi to run one", a.Type)
		}
	case AppGo:
		if len(a.Command) == 0 {
			v.errorf("app.type", "go needs app.command, the Go program's command")
		}
	case AppHTTP:
		if len(a.Command) == 0 {
			v.errorf("app.type", "http needs app.command, the app server's command (gunicorn, puma, node ...)")
		}
	case AppFastCGI:
		switch {
		case len(a.Command) == 0 && a.FastCGI.Address == "":
			v.errorf("app.type", "fastcgi needs app.command (php-cgi -b {socket}) or app.fastcgi.address")
		case len(a.Command) > 0 && a.FastCGI.Address != "":
			v.errorf("app.fastcgi.address", "type fastcgi takes a command or an address, not both")
		}
		if len(a.FastCGI.Extensions) == 0 {
			v.errorf("app.fastcgi.extensions", "must name at least one script extension, as .php")
		}
		for i, e := range a.FastCGI.Extensions {
			if !strings.HasPrefix(e, ".") || len(e) < 2 || strings.ContainsAny(e, "/\x00") {
				v.errorf(fmt.Sprintf("app.fastcgi.extensions[%d]", i), "%q is not an extension, as .php", e)
			}
		}
		for i, f := range a.FastCGI.Index {
			if f == "" || strings.ContainsAny(f, "/\x00") {
				v.errorf(fmt.Sprintf("app.fastcgi.index[%d]", i), "%q is not a file name", f)
			}
		}
		if addr := a.FastCGI.Address; addr != "" && !strings.HasPrefix(addr, "unix:/") {
			if _, msg := checkListen(addr); msg != "" {
				v.errorf("app.fastcgi.address", "%s (a host:port, or unix: and a socket path)", msg)
			}
		}
	}
	if a.Type == AppCGI && len(a.CGI.Paths) == 0 {
		v.errorf("app.type", `cgi needs app.cgi.paths: at least one URL prefix and its folder, as {"/cgi-bin/": "cgi-bin"}`)
	}
	for _, prefix := range sortedKeys(a.CGI.Paths) {
		if !strings.HasPrefix(prefix, "/") {
			v.errorf("app.cgi.paths", "URL prefix %q must start with /", prefix)
		}
	}
	v.oneOf("app.listen", a.Listen, []string{"socket", "port"})
	if a.HealthCheck != "" && a.Type != AppHTTP {
		v.errorf("app.health_check", "is for app servers that speak HTTP (type http)")
	} else if a.HealthCheck != "" && !strings.HasPrefix(a.HealthCheck, "/") {
		v.errorf("app.health_check", "%q must be a path starting with / (or empty)", a.HealthCheck)
	}
	v.oneOf("app.stop_signal", a.StopSignal, StopSignals)
	v.positive("app.start_timeout", a.StartTimeout)
	v.positive("app.stop_timeout", a.StopTimeout)
	if a.ReadTimeout < 0 {
		v.errorf("app.read_timeout", "must not be negative (0: no bound), got %s", formatDuration(a.ReadTimeout))
	}
	v.positive("app.cgi.timeout", a.CGI.Timeout)
	if len(a.SendfilePaths) > 0 && a.Type != AppHTTP && a.Type != AppFastCGI {
		v.errorf("app.sendfile_paths", "is for apps that answer with headers of their own (type http or fastcgi)")
	}
	for _, p := range a.SendfilePaths {
		if p == "" || p == "/" {
			v.errorf("app.sendfile_paths", "%q would let the app send any file: name the folders it may", p)
		}
	}
	for key, size := range map[string]Size{"app.max_body_size": a.MaxBodySize, "app.body_buffer_size": a.BodyBufferSize,
		"app.response_buffer_size": a.ResponseBufferSize} {
		if size <= 0 {
			v.errorf(key, "must be greater than 0")
		}
	}
	if a.MaxTempFileSize < 0 {
		v.errorf("app.max_temp_file_size", "must not be negative")
	}
	if a.Type == AppHTTP || (a.Type == AppFastCGI && len(a.Command) > 0) {
		c.validatePlaceholders(v)
	}
}

// validatePlaceholders checks an app server's command: placeholders it
// knows, and the address one for the way it listens.
func (c *Config) validatePlaceholders(v *validator) {
	a := c.App
	for i, arg := range a.Command {
		key := fmt.Sprintf("app.command[%d]", i)
		for _, ph := range placeholderRe.FindAllString(arg, -1) {
			switch ph {
			case "{threads}", "{slot}", "{generation}":
			case "{socket}":
				if a.Listen != "socket" {
					v.errorf(key, "{socket} is for app.listen: socket; with listen: port use {port} (or $PORT)")
				}
			case "{port}":
				if a.Listen != "port" {
					v.errorf(key, "{port} is for app.listen: port; with listen: socket use {socket} (or $PHASED_APP_SOCKET)")
				}
			default:
				v.errorf(key, "unknown placeholder %s (known: {socket}, {port}, {threads}, {slot}, {generation})", ph)
			}
		}
		if i == 0 && placeholderRe.MatchString(arg) {
			v.errorf(key, "the program itself cannot be a placeholder")
		}
	}
}
