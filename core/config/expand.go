package config

import (
	"fmt"
	"sort"
	"strings"
)

// expandEnv resolves ${VAR} and ${VAR:-default} in every string value of a
// file layer's document, from environ (the container convention:
// `listen: ["0.0.0.0:${PORT:-8080}"]`). $${ writes a literal ${. A variable
// that is not set, without a default, is an error naming the key and the
// variable; so is a reference that does not end. It runs on every load,
// so each configuration pass (a graceful restart) reads the environment
// again.
func expandEnv(doc map[string]any, environ []string, source string) []error {
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	var errs []error
	var walk func(path string, v any) any
	walk = func(path string, v any) any {
		switch x := v.(type) {
		case string:
			s, err := expandString(x, env)
			if err != nil {
				errs = append(errs, &Error{Source: source, Key: path, Msg: err.Error()})
				return x
			}
			return s
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				x[k] = walk(join(path, k), x[k])
			}
		case []any:
			for i, e := range x {
				x[i] = walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		}
		return v
	}
	walk("", doc)
	return errs
}

// expandString resolves the references in s.
func expandString(s string, env map[string]string) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' { // $${ is a literal ${
			b.WriteString(s[:i-1] + "${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("%q: ${ without its closing }", s)
		}
		ref := s[i+2 : i+end]
		s = s[i+end+1:]
		name, def, hasDef := strings.Cut(ref, ":-")
		if !validEnvName(name) {
			return "", fmt.Errorf("${%s}: %q is not a variable name", ref, name)
		}
		v, set := env[name]
		switch {
		case set && (v != "" || !hasDef):
			b.WriteString(v)
		case hasDef:
			b.WriteString(def)
		default:
			return "", fmt.Errorf("${%s}: the environment variable %s is not set (give a default with ${%s:-value})", name, name, name)
		}
	}
}

// validEnvName reports whether name is a shell variable name.
func validEnvName(name string) bool {
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		return false
	}
	for _, c := range name {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
