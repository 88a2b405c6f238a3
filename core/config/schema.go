package config

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
)

var (
	durationType = reflect.TypeFor[time.Duration]()
	sizeType     = reflect.TypeFor[Size]()
	// textUnmarshalerType is what a type that may be written as a
	// string implements.
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	configType          = reflect.TypeFor[Config]()
)

// field is one configuration key of a struct.
type field struct {
	key   string
	typ   reflect.Type
	index []int
}

// schema is what a struct type accepts: its keys from the koanf tags, and
// whether it keeps unknown keys (a ",remain" field, as MPM does).
type schema struct {
	fields []field
	open   bool
}

// schemaOf reads the koanf tags of struct type t.
func schemaOf(t reflect.Type) schema {
	var s schema
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("koanf")
		name, opts, _ := strings.Cut(tag, ",")
		switch {
		case tag == "-" || !f.IsExported():
		case opts == "remain":
			s.open = true
		case name != "":
			s.fields = append(s.fields, field{key: name, typ: f.Type, index: f.Index})
		}
	}
	return s
}

func (s schema) lookup(key string) (reflect.Type, bool) {
	for _, f := range s.fields {
		if f.key == key {
			return f.typ, true
		}
	}
	return nil, false
}

// checker walks one layer against the Config type and collects an *Error
// for every unknown key and every value that cannot become its field's type.
// Checking each layer alone is what lets an error name the file, variable or
// flag it came from.
type checker struct {
	l    *layer
	errs []error
}

// checkLayer returns the problems of one layer.
func checkLayer(l *layer) []error {
	c := &checker{l: l}
	c.value("", map[string]any(l.data), configType)
	return c.errs
}

func (c *checker) errorf(path, format string, args ...any) {
	c.errs = append(c.errs, &Error{Source: c.l.source(path), Key: path, Msg: fmt.Sprintf(format, args...)})
}

func (c *checker) unknown(path string, known schema, key string) {
	msg := fmt.Sprintf("unknown key %q", path)
	if s := suggest(key, known); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	for _, src := range c.l.sourcesUnder(path) {
		c.errs = append(c.errs, &Error{Source: src, Key: path, Msg: msg, Err: ErrUnknownKey})
	}
}

// value checks v, found at path, against type t.
func (c *checker) value(path string, v any, t reflect.Type) {
	if v == nil {
		return // null leaves the field at its zero value; validation judges it
	}
	_, isString := v.(string)
	switch {
	case t.Kind() == reflect.Pointer:
		c.value(path, v, t.Elem())
	case isString && reflect.PointerTo(t).Implements(textUnmarshalerType):
		c.leaf(path, v, t) // a mapping type written as a string: a listen address
	case t == durationType:
		c.leaf(path, v, t)
	case t.Kind() == reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			c.errorf(path, "expected a mapping, got %s", describe(v))
			return
		}
		s := schemaOf(t)
		for _, key := range sortedKeys(m) {
			sub := join(path, key)
			ft, ok := s.lookup(key)
			switch {
			case ok:
				c.value(sub, m[key], ft)
			case !s.open:
				c.unknown(sub, s, key)
			}
		}
	case t.Kind() == reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			if t.Elem().Kind() == reflect.Struct && !reflect.PointerTo(t.Elem()).Implements(textUnmarshalerType) {
				c.errorf(path, "expected a list, got %s", describe(v))
				return
			}
			c.leaf(path, v, t) // a string becomes a list by splitting on commas
			return
		}
		for i, e := range list {
			c.value(fmt.Sprintf("%s[%d]", path, i), e, t.Elem())
		}
	case t.Kind() == reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			c.leaf(path, v, t)
			return
		}
		for _, key := range sortedKeys(m) {
			c.value(join(path, key), m[key], t.Elem())
		}
	default:
		c.leaf(path, v, t)
	}
}

// leaf decodes v into a fresh value of type t exactly as Load will, and
// reports the failure in words a user understands.
func (c *checker) leaf(path string, v any, t reflect.Type) {
	out := reflect.New(t)
	d, err := mapstructure.NewDecoder(decoderConfig(out.Interface()))
	if err == nil {
		err = d.Decode(v)
	}
	if err != nil {
		c.errorf(path, "%s", leafMessage(err, v, t))
	}
}

// leafMessage explains why v does not fit type t.
func leafMessage(err error, v any, t reflect.Type) string {
	var ve *valueError
	if errors.As(err, &ve) {
		return ve.msg
	}
	return fmt.Sprintf("expected %s, got %s", expectation(t), describe(v))
}

// expectation names what type t accepts.
func expectation(t reflect.Type) string {
	if t == durationType {
		return `a duration such as "30s"`
	}
	if t == sizeType {
		return `a size such as 100M`
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	default:
		return "a mapping"
	}
}

// describe names a decoded YAML, JSON or environment value for a message.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(x)
	case map[string]any, map[any]any:
		return "a mapping"
	case []any:
		return "a list"
	case time.Time:
		return "a timestamp"
	default:
		return fmt.Sprint(x)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest returns the known key closest to key, if it is close enough to be
// a typo.
func suggest(key string, s schema) string {
	best, bestD := "", 3
	for _, f := range s.fields {
		if d := distance(key, f.key); d < bestD && d < len(f.key)/2+1 {
			best, bestD = f.key, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// valueError is a decode hook's explanation of a bad value, passed through
// mapstructure's wrapping to the user unchanged.
type valueError struct{ msg string }

func (e *valueError) Error() string { return e.msg }

// decoderConfig is the mapstructure configuration of every decode: exact key
// match, unknown keys rejected, values weakly typed (so "4" from the
// environment is an int), durations parsed from "30s", strings split on
// commas into lists.
func decoderConfig(result any) *mapstructure.DecoderConfig {
	return &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			durationHook,
			intHook,
			boolToStringHook,
			stringToSliceHook,
			mapstructure.TextUnmarshallerHookFunc(),
		),
		ErrorUnused:      true,
		WeaklyTypedInput: true,
		MatchName:        func(key, field string) bool { return key == field },
		TagName:          "koanf",
		Result:           result,
	}
}

// durationHook parses "30s" into a time.Duration and refuses numbers without
// a unit (other than 0), which mapstructure would read as nanoseconds.
func durationHook(_ reflect.Type, t reflect.Type, data any) (any, error) {
	if t != durationType {
		return data, nil
	}
	switch d := data.(type) {
	case string:
		v, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil {
			return nil, &valueError{fmt.Sprintf("invalid duration %q", d)}
		}
		return v, nil
	case time.Duration:
		return d, nil
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		if reflect.ValueOf(d).IsZero() {
			return time.Duration(0), nil
		}
		return nil, &valueError{fmt.Sprintf(`invalid duration %v (missing unit, as in "30s")`, d)}
	case bool:
		return nil, &valueError{fmt.Sprintf("invalid duration %v", d)}
	}
	return data, nil
}

// intHook reads integers strictly: decimal strings only (mapstructure would
// read "010" as octal), no fractions, no booleans, nothing out of range.
func intHook(_ reflect.Type, t reflect.Type, data any) (any, error) {
	if t == durationType || t == sizeType {
		return data, nil
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
	default:
		return data, nil
	}
	bad := func() error { return &valueError{"expected an integer, got " + describe(data)} }
	var n int64
	switch d := data.(type) {
	case string:
		v, err := strconv.ParseInt(strings.TrimSpace(d), 10, 64)
		if err != nil {
			return nil, bad()
		}
		n = v
	case float64:
		if d != math.Trunc(d) || d < math.MinInt64 || d >= math.MaxInt64 {
			return nil, bad()
		}
		n = int64(d)
	case float32:
		return intHook(nil, t, float64(d))
	case uint64:
		if d > math.MaxInt64 {
			return nil, bad()
		}
		n = int64(d)
	case uint:
		if uint64(d) > math.MaxInt64 {
			return nil, bad()
		}
		n = int64(d)
	case bool:
		return nil, bad()
	default:
		return data, nil
	}
	if reflect.Zero(t).OverflowInt(n) {
		return nil, bad()
	}
	return n, nil
}

// boolToStringHook writes a YAML boolean as "true" or "false" where a
// string is wanted (exec: [sh, -c, true]); mapstructure would write "1".
func boolToStringHook(_ reflect.Type, t reflect.Type, data any) (any, error) {
	if b, ok := data.(bool); ok && t.Kind() == reflect.String {
		return strconv.FormatBool(b), nil
	}
	return data, nil
}

// stringToSliceHook splits "a, b" into ["a", "b"] for list keys, so
// PHASED_LISTEN=127.0.0.1:1,127.0.0.1:2 gives two addresses; "" is an empty
// list.
func stringToSliceHook(f reflect.Type, t reflect.Type, data any) (any, error) {
	if f.Kind() != reflect.String || t.Kind() != reflect.Slice ||
		t.Elem().Kind() != reflect.String && !reflect.PointerTo(t.Elem()).Implements(textUnmarshalerType) {
		return data, nil
	}
	s := strings.TrimSpace(reflect.ValueOf(data).String())
	if s == "" {
		return []string{}, nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts, nil
}
