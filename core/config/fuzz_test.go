package config

import (
	"testing"
)

// FuzzLoadYAML feeds arbitrary bytes to Load as a config file. Load must not
// panic; what it accepts must encode and come back through FromJSON.
func FuzzLoadYAML(f *testing.F) {
	f.Add([]byte(full))
	f.Add(defaultYAML)
	f.Add([]byte("listen: [\"127.0.0.1:1\"]\nmpm: {name: prefork, x: [1, {a: b}]}\n"))
	f.Add([]byte("hooks: [{name: a, phase: configure, exec: x, order: 3, timeout: 0}]\n"))
	f.Add([]byte("listen: 1\nlisten_backlog: 1e30\ntimeouts: [1]\n"))
	f.Add([]byte("mpm: {x: .nan}\napp: {env: {1: 2}}\n? [a]\n: b\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("!!binary aGVsbG8=\n"))
	f.Add([]byte("mpm: {t: !!timestamp 2001-12-14, name: worker}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		def, err := yamlLayer(kindDefault, "default", defaultYAML)
		if err != nil {
			t.Fatal(err)
		}
		l, err := yamlLayer(kindFile, "/fuzz/phased.yaml", b)
		if err != nil {
			return
		}
		c, err := build(layers{def, l}, "/", "/fuzz/phased.yaml", nil)
		if err != nil {
			return
		}
		if _, err := c.YAML(); err != nil {
			t.Fatalf("YAML: %v", err)
		}
		j, err := c.JSON()
		if err != nil {
			t.Fatalf("JSON: %v", err)
		}
		if _, err := FromJSON(j); err != nil {
			t.Fatalf("FromJSON(JSON()): %v\n%s", err, j)
		}
	})
}
