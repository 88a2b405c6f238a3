package config

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/v2"
	"go.yaml.in/yaml/v3"

	"github.com/phasedhq/phased/internal/phase"
)

// envPrefix starts every environment variable Load reads.
const envPrefix = "PHASED_"

// reservedEnvPrefixes start names kept for phased's own use and its tests.
var reservedEnvPrefixes = [...]string{
	"PHASED_TEST_",
	"PHASED_CHILD_",
	"PHASED_INTERNAL_",
}

// IsReservedEnv reports whether the environment variable name is one that
// phased sets for hooks and children (PHASED_PHASE, PHASED_CONFIG ...) or
// keeps for itself (PHASED_TEST_*, PHASED_CHILD_*, PHASED_INTERNAL_*). Load
// ignores such names instead of reading them as configuration.
func IsReservedEnv(name string) bool {
	if phase.HookVar(name) {
		return true
	}
	for _, p := range reservedEnvPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// kind says what a layer is; it decides how relative paths in it resolve.
type kind int

const (
	kindDefault kind = iota
	kindFile
	kindEnv
	kindOverride
	kindJSON
)

// layer is one source of configuration, before merging.
type layer struct {
	kind kind
	name string         // "default", the file's path, "environment", "-c", "json"
	k    *koanf.Koanf   // the layer alone
	data map[string]any // k.Raw(), nested

	// sources maps each dotted key the layer sets to the label an error
	// about it carries ("environment PHASED_X", "-c k=v"); nil when every
	// key carries name.
	sources map[string]string
}

// source returns the label for an error about path (dotted, list indices
// allowed) in this layer.
func (l *layer) source(path string) string {
	if l.sources == nil {
		return l.name
	}
	k := stripIndex(path)
	if s, ok := l.sources[k]; ok {
		return s
	}
	// A key under k ("foo" when PHASED_FOO__BAR set foo.bar), then one
	// above it.
	var under []string
	for key := range l.sources {
		if strings.HasPrefix(key, k+".") {
			under = append(under, key)
		}
	}
	if len(under) > 0 {
		sort.Strings(under)
		return l.sources[under[0]]
	}
	for k != "" {
		i := strings.LastIndexByte(k, '.')
		if i < 0 {
			break
		}
		k = k[:i]
		if s, ok := l.sources[k]; ok {
			return s
		}
	}
	return l.name
}

// sourcesUnder returns the labels of every key the layer sets at or under
// path, sorted; for a file, its name.
func (l *layer) sourcesUnder(path string) []string {
	if l.sources == nil {
		return []string{l.name}
	}
	k := stripIndex(path)
	seen := map[string]bool{}
	var out []string
	for key, s := range l.sources {
		if (key == k || strings.HasPrefix(key, k+".")) && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return []string{l.source(path)}
	}
	sort.Strings(out)
	return out
}

// sets reports whether the layer gives a value for path, or for a list or
// scalar above it.
func (l *layer) sets(path string) bool {
	var cur any = l.data
	for _, part := range strings.Split(stripIndex(path), ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return true // a scalar or list above path replaces it
		}
		if cur, ok = m[part]; !ok {
			return false
		}
	}
	return true
}

// stripIndex cuts path at its first list index: "hooks[0].name" is "hooks".
// Lists are replaced whole when layers merge, so whoever set the list set
// every entry.
func stripIndex(path string) string {
	if i := strings.IndexByte(path, '['); i >= 0 {
		return path[:i]
	}
	return path
}

// layers are the sources of one Load, lowest first.
type layers []*layer

// setter returns the highest layer that sets path, or nil.
func (ls layers) setter(path string) *layer {
	for i := len(ls) - 1; i >= 0; i-- {
		if ls[i].sets(path) {
			return ls[i]
		}
	}
	return nil
}

// source returns the label of the highest layer that sets path, or
// "default".
func (ls layers) source(path string) string {
	if l := ls.setter(path); l != nil {
		return l.source(path)
	}
	return "default"
}

// newLayer wraps a nested map in its own koanf instance.
func newLayer(kd kind, name string, data map[string]any, sources map[string]string) *layer {
	k := koanf.New(".")
	// confmap with no delimiter takes the map as nested; it never fails.
	_ = k.Load(confmap.Provider(data, ""), nil)
	return &layer{kind: kd, name: name, k: k, data: k.Raw(), sources: sources}
}

// yamlLayer parses a YAML document into a layer named name.
func yamlLayer(kd kind, name string, b []byte) (*layer, error) {
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, &Error{Source: name, Msg: yamlMessage(err), Err: err}
	}
	var m map[string]any
	switch d := doc.(type) {
	case nil:
		m = map[string]any{}
	case map[string]any:
		m = d
	case map[any]any:
		m = stringKeys(d)
	default:
		return nil, &Error{Source: name, Msg: "the document must be a mapping of keys to values, got " + describe(doc)}
	}
	return newLayer(kd, name, m, nil), nil
}

// yamlMessage turns a YAML decoder error into "line N: what".
func yamlMessage(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return strings.Join(te.Errors, "; ")
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// stringKeys converts a YAML map with non-string keys to one keyed by their
// text; koanf then does the same for nested maps.
func stringKeys(in map[any]any) map[string]any {
	out := make(map[string]any, len(in))
	for k, v := range in {
		out[fmt.Sprint(k)] = v
	}
	return out
}

// envLayer reads the PHASED_* entries of environ into a layer.
func envLayer(environ []string) (*layer, []error) {
	var errs []error
	sources := map[string]string{}
	names := map[string]string{} // key -> variable name
	p := env.Provider("", env.Opt{
		Prefix:      envPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, value string) (string, any) {
			if IsReservedEnv(name) {
				return "", nil
			}
			label := "environment " + name
			key, msg := envKey(name)
			if msg != "" {
				errs = append(errs, &Error{Source: label, Msg: msg})
				return "", nil
			}
			if prev, ok := names[key]; ok {
				errs = append(errs, &Error{Source: label, Key: key, Msg: "also set by " + prev})
				return "", nil
			}
			names[key] = name
			sources[key] = label
			return key, typedValue(key, value)
		},
	})
	flat, _ := p.Read() // reading a slice never fails
	errs = append(errs, conflicts(flat, sources)...)
	return newLayer(kindEnv, "environment", unflatten(flat), sources), errs
}

// envKey turns PHASED_ERROR_LOG__LEVEL into error_log.level, or says why it
// cannot. Names of app.env entries keep their case and any "__".
func envKey(name string) (key, msg string) {
	rest := strings.TrimPrefix(name, envPrefix)
	if rest == "" {
		return "", "no key after " + envPrefix
	}
	parts := strings.Split(rest, "__")
	for i, p := range parts {
		if p == "" {
			return "", `empty key between "__" separators`
		}
		if i == 2 && strings.EqualFold(parts[0], "app") && strings.EqualFold(parts[1], "env") {
			return "app.env." + strings.Join(parts[2:], "__"), ""
		}
		parts[i] = strings.ToLower(p)
	}
	return strings.Join(parts, "."), ""
}

// overrideLayer reads -c key=value pairs into a layer.
func overrideLayer(overrides []string) (*layer, []error) {
	var errs []error
	flat := map[string]any{}
	sources := map[string]string{}
	for _, o := range overrides {
		label := "-c " + o
		key, value, ok := strings.Cut(o, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			errs = append(errs, &Error{Source: label, Msg: "expected key=value, as in -c mpm.start_servers=4"})
			continue
		}
		if strings.HasPrefix(key, ".") || strings.HasSuffix(key, ".") || strings.Contains(key, "..") {
			errs = append(errs, &Error{Source: label, Msg: fmt.Sprintf("key %q has an empty part", key)})
			continue
		}
		flat[key] = typedValue(key, value)
		sources[key] = label
	}
	errs = append(errs, conflicts(flat, sources)...)
	return newLayer(kindOverride, "-c", unflatten(flat), sources), errs
}

// conflicts reports, and drops from flat, each key that another key nests
// under ("mpm" beside "mpm.name"): one layer cannot set both.
func conflicts(flat map[string]any, sources map[string]string) []error {
	keys := make([]string, 0, len(flat))
	for k := range flat {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		for _, other := range keys {
			if strings.HasPrefix(other, k+".") {
				errs = append(errs, &Error{Source: sources[k], Key: k,
					Msg: fmt.Sprintf("conflicts with %s, which sets a key inside it", strings.TrimPrefix(sources[other], "environment "))})
				delete(flat, k)
				delete(sources, k)
				break
			}
		}
	}
	return errs
}

// unflatten nests dotted keys; conflicts has made sure no key is both a
// value and a parent.
func unflatten(flat map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range flat {
		parts := strings.Split(k, ".")
		m := out
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		m[parts[len(parts)-1]] = v
	}
	return out
}

// typedValue reads an environment or -c value. Values for keys config knows
// stay strings and are converted to the key's type when decoded; MPM
// settings, which config does not know, are read as YAML scalars so the MPM
// sees 4, not "4", as it would from a file.
func typedValue(key, value string) any {
	if !strings.HasPrefix(key, "mpm.") || key == "mpm.name" {
		return value
	}
	var v any
	if err := yaml.Unmarshal([]byte(value), &v); err != nil {
		return value
	}
	switch s := v.(type) {
	case int, int64, uint64, bool:
		return v
	case float64:
		if !math.IsInf(s, 0) && !math.IsNaN(s) {
			return v
		}
	}
	return value
}
