package policy

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/phasedhq/phased/sdk/mpm"
)

// reader reads typed values out of a ConfigureRequest's settings and
// remembers which keys it consumed, so that the rest can be reported as
// unknown.
type reader struct {
	mpmName  string
	settings map[string]any
	known    map[string]bool
}

func newReader(mpmName string, settings map[string]any) *reader {
	return &reader{mpmName: mpmName, settings: settings, known: map[string]bool{}}
}

// lookup returns the value of key, or of its alias when key is not set. Both
// names become known. Setting both is an error naming the alias.
func (r *reader) lookup(key string, aliases ...string) (name string, v any, ok bool, err error) {
	r.known[key] = true
	v, ok = r.settings[key]
	name = key
	for _, a := range aliases {
		r.known[a] = true
		av, aok := r.settings[a]
		if !aok {
			continue
		}
		if ok {
			return a, nil, false, &mpm.SettingError{Key: a, Msg: fmt.Sprintf("%s is an alias of %s; set only one of them", a, key)}
		}
		name, v, ok = a, av, true
	}
	return name, v, ok, nil
}

// knownKeys, when set (by tests), is told every key a parse read or
// accepted as an alias, when it checks for unknown ones.
var knownKeys func(mpmName string, known map[string]bool)

// unknown returns a SettingError for the first (in sorted order) key that no
// read asked for.
func (r *reader) unknown() error {
	if knownKeys != nil {
		knownKeys(r.mpmName, r.known)
	}
	var keys []string
	for k := range r.settings {
		if !r.known[k] {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	sort.Strings(keys)
	return &mpm.SettingError{Key: keys[0], Msg: fmt.Sprintf("unknown key %q for the %s MPM", keys[0], r.mpmName)}
}

// int reads an integer setting. Integers of any Go type, integral floats (as
// JSON decoders produce) and decimal strings (as environment variables
// produce) are accepted.
func (r *reader) int(key string, def int, aliases ...string) (int, error) {
	name, v, ok, err := r.lookup(key, aliases...)
	if err != nil || !ok {
		return def, err
	}
	n, err := toInt(v)
	if err != nil {
		return def, &mpm.SettingError{Key: name, Msg: err.Error()}
	}
	return n, nil
}

// nonNegInt reads an integer setting that may not be negative.
func (r *reader) nonNegInt(key string, def int) (int, error) {
	n, err := r.int(key, def)
	if err != nil {
		return def, err
	}
	if n < 0 {
		return def, &mpm.SettingError{Key: key, Msg: fmt.Sprintf("must not be negative, got %d", n)}
	}
	return n, nil
}

// bool reads an on/off setting: a bool, or one of the strings true, false,
// on, off, yes, no, 1, 0.
func (r *reader) bool(key string, def bool) (bool, error) {
	_, v, ok, _ := r.lookup(key)
	if !ok {
		return def, nil
	}
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(b)) {
		case "true", "on", "yes", "1":
			return true, nil
		case "false", "off", "no", "0":
			return false, nil
		}
		return def, &mpm.SettingError{Key: key, Msg: fmt.Sprintf("want on or off, got %q", b)}
	}
	return def, &mpm.SettingError{Key: key, Msg: fmt.Sprintf("want a boolean, got %T", v)}
}

// choice reads a string setting that must be one of the given values.
func (r *reader) choice(key, def string, values ...string) (string, error) {
	_, v, ok, _ := r.lookup(key)
	if !ok {
		return def, nil
	}
	s, isString := v.(string)
	if !isString {
		return def, &mpm.SettingError{Key: key, Msg: fmt.Sprintf("want one of %s, got %T", strings.Join(values, ", "), v)}
	}
	s = strings.ToLower(strings.TrimSpace(s))
	for _, want := range values {
		if s == want {
			return s, nil
		}
	}
	return def, &mpm.SettingError{Key: key, Msg: fmt.Sprintf("want one of %s, got %q", strings.Join(values, ", "), s)}
}

// bytes reads a size: a non-negative integer of bytes, or a string such as
// "512M", "1G", "64KiB" or "1048576" (binary multiples).
func (r *reader) bytes(key string, def int64) (int64, error) {
	_, v, ok, _ := r.lookup(key)
	if !ok {
		return def, nil
	}
	var n int64
	if s, isString := v.(string); isString {
		b, err := ParseBytes(s)
		if err != nil {
			return def, &mpm.SettingError{Key: key, Msg: err.Error()}
		}
		n = b
	} else {
		i, err := toInt(v)
		if err != nil {
			return def, &mpm.SettingError{Key: key, Msg: "want bytes or a size such as \"512M\": " + err.Error()}
		}
		n = int64(i)
	}
	if n < 0 {
		return def, &mpm.SettingError{Key: key, Msg: fmt.Sprintf("must not be negative, got %d", n)}
	}
	return n, nil
}

// positiveFloat reads a number that must be greater than zero.
func (r *reader) positiveFloat(key string, def float64) (float64, error) {
	_, v, ok, _ := r.lookup(key)
	if !ok {
		return def, nil
	}
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	case string:
		p, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return def, &mpm.SettingError{Key: key, Msg: fmt.Sprintf("want a number, got %q", x)}
		}
		f = p
	default:
		i, err := toInt(v)
		if err != nil {
			return def, &mpm.SettingError{Key: key, Msg: err.Error()}
		}
		f = float64(i)
	}
	if !(f > 0) || math.IsInf(f, 0) {
		return def, &mpm.SettingError{Key: key, Msg: fmt.Sprintf("must be a positive number, got %v", v)}
	}
	return f, nil
}

// toInt converts a decoded configuration value to an int.
func toInt(v any) (int, error) {
	switch x := v.(type) {
	case int:
		return x, nil
	case int8:
		return int(x), nil
	case int16:
		return int(x), nil
	case int32:
		return int(x), nil
	case int64:
		return int(x), nil
	case uint:
		if uint64(x) > math.MaxInt64 {
			return 0, fmt.Errorf("%d is out of range", x)
		}
		return int(x), nil
	case uint8:
		return int(x), nil
	case uint16:
		return int(x), nil
	case uint32:
		return int(x), nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("%d is out of range", x)
		}
		return int(x), nil
	case float32:
		return floatToInt(float64(x))
	case float64:
		return floatToInt(x)
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("want an integer, got %q", x)
		}
		return int(n), nil
	case nil:
		return 0, fmt.Errorf("want an integer, got nothing")
	}
	return 0, fmt.Errorf("want an integer, got %T", v)
}

func floatToInt(f float64) (int, error) {
	if f != math.Trunc(f) || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("want an integer, got %v", f)
	}
	if f > math.MaxInt64 || f < math.MinInt64 {
		return 0, fmt.Errorf("%v is out of range", f)
	}
	return int(f), nil
}

// ParseBytes reads a size in bytes: digits with an optional unit K, M, G or
// T (case-insensitive, optionally followed by "B" or "iB"), each 1024 times
// the one before. "512M" is 536870912; "1G" is 1073741824; "100" is 100.
func ParseBytes(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "IB")
	t = strings.TrimSuffix(t, "B")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = strings.TrimSpace(t[:len(t)-1])
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("want a size such as \"512M\" or \"1G\", got %q", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is out of range", s)
	}
	return n * mult, nil
}
