package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnvReferences(t *testing.T) {
	for _, tt := range []struct {
		name, file string
		env        []string
		check      func(t *testing.T, c *Config)
		err        string
	}{
		{name: "set", file: "listen: [\"127.0.0.1:${PORT}\"]\nlisten_backlog: ${BACKLOG}\n", env: []string{"PORT=9090", "BACKLOG=1024"},
			check: func(t *testing.T, c *Config) {
				if c.Listen[0].Address != "127.0.0.1:9090" || c.ListenBacklog != 1024 {
					t.Errorf("listen %v backlog %d", c.Listen, c.ListenBacklog)
				}
			}},
		{name: "default", file: "listen: [\"127.0.0.1:${PORT:-8081}\"]\n", env: []string{"HOME=/root"},
			check: func(t *testing.T, c *Config) {
				if c.Listen[0].Address != "127.0.0.1:8081" {
					t.Errorf("listen %v", c.Listen)
				}
			}},
		{name: "empty takes the default", file: "listen: [\"127.0.0.1:${PORT:-8082}\"]\n", env: []string{"PORT="},
			check: func(t *testing.T, c *Config) {
				if c.Listen[0].Address != "127.0.0.1:8082" {
					t.Errorf("listen %v", c.Listen)
				}
			}},
		{name: "nested and literal", file: "app:\n  env:\n    DATABASE_URL: \"postgres://${DB_HOST}/app\"\n    LITERAL: \"$${NOT}\"\n", env: []string{"DB_HOST=db"},
			check: func(t *testing.T, c *Config) {
				if c.App.Env["DATABASE_URL"] != "postgres://db/app" || c.App.Env["LITERAL"] != "${NOT}" {
					t.Errorf("app.env %v", c.App.Env)
				}
			}},
		{name: "missing", file: "listen: [\"127.0.0.1:${PORT}\"]\n",
			err: "listen[0]: ${PORT}: the environment variable PORT is not set (give a default with ${PORT:-value})"},
		{name: "unterminated", file: "pid_file: \"run/${X\"\n", err: `pid_file: "run/${X": ${ without its closing }`},
		{name: "not a name", file: "pid_file: \"${1X}\"\n", err: `pid_file: ${1X}: "1X" is not a variable name`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "phased.yaml")
			if err := os.WriteFile(path, []byte(tt.file), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Load(LoadOptions{File: path, Env: tt.env})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), path+": "+tt.err) {
					t.Fatalf("Load = %v, want an error with %q", err, path+": "+tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}
