package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// YAML returns the configuration as YAML, in the shape users write it: keys
// in the order of the config contract, durations as "30s", the mpm section
// flat. phased -S prints it.
func (c *Config) YAML() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c.tree()); err != nil {
		return nil, fmt.Errorf("encoding config as yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding config as yaml: %w", err)
	}
	return buf.Bytes(), nil
}

// JSON returns the configuration as indented JSON with the same keys and
// shape as YAML. The master writes it to the file it passes to hooks and
// children as PHASED_CONFIG; FromJSON reads it back.
func (c *Config) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(c.tree(), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding config as json: %w", err)
	}
	return b, nil
}

// MarshalJSON makes json.Marshal write what JSON writes.
func (c Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(c.tree())
}

// FromJSON reads a configuration written by JSON: the inverse of JSON, for
// children and hooks reading the config the master passed them. The
// document is checked and validated as Load checks a layer, with errors
// naming the source "json"; no default is applied beneath it. Relative
// paths, which JSON never writes, resolve against the working directory.
func FromJSON(b []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, &Error{Source: "json", Err: err}
	}
	if err := dec.Decode(new(any)); !errors.Is(err, io.EOF) {
		return nil, &Error{Source: "json", Msg: "unexpected data after the configuration object"}
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, &Error{Source: "json", Msg: "the document must be an object, got " + describe(doc)}
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("finding the working directory: %w", err)
	}
	l := newLayer(kindJSON, "json", fromNumbers(m).(map[string]any), nil)
	return build(layers{l}, cwd, "", nil)
}

// UnmarshalJSON makes json.Unmarshal do what FromJSON does.
func (c *Config) UnmarshalJSON(b []byte) error {
	n, err := FromJSON(b)
	if err != nil {
		return err
	}
	*c = *n
	return nil
}

// fromNumbers replaces json.Number with int (or uint64, or float64), the
// types YAML gives, so MPM settings look the same whichever way they came.
func fromNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 0); err == nil {
			return int(i)
		}
		if u, err := strconv.ParseUint(string(x), 10, 64); err == nil {
			return u
		}
		f, _ := x.Float64() // the decoder only makes valid numbers
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = fromNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = fromNumbers(e)
		}
	}
	return v
}

// member is one key of an orderedMap.
type member struct {
	key   string
	value any
}

// orderedMap is a mapping that keeps its keys in order when encoded as YAML
// or JSON.
type orderedMap []member

// MarshalJSON implements json.Marshaler.
func (m orderedMap) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, e := range m {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, err := json.Marshal(e.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(e.value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.key, err)
		}
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// MarshalYAML implements yaml.Marshaler.
func (m orderedMap) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, e := range m {
		k, v := new(yaml.Node), new(yaml.Node)
		if err := k.Encode(e.key); err != nil {
			return nil, err
		}
		if err := v.Encode(e.value); err != nil {
			return nil, fmt.Errorf("%s: %w", e.key, err)
		}
		n.Content = append(n.Content, k, v)
	}
	return n, nil
}

// tree turns the configuration into ordered maps, lists and scalars, in the
// shape users write.
func (c *Config) tree() any {
	return toTree(reflect.ValueOf(*c))
}

var (
	mpmType      = reflect.TypeFor[MPM]()
	listenerType = reflect.TypeFor[Listener]()
)

func toTree(v reflect.Value) any {
	t := v.Type()
	switch {
	case t == durationType:
		return formatDuration(time.Duration(v.Int()))
	case t.Kind() == reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return toTree(v.Elem())
	case t == listenerType && v.Interface().(Listener).plain():
		return v.Interface().(Listener).Address // written as it is usually written
	case t == mpmType:
		mpm := v.Interface().(MPM)
		m := orderedMap{{"name", mpm.Name}}
		for _, k := range sortedKeys(mpm.Settings) {
			m = append(m, member{k, mpm.Settings[k]})
		}
		return m
	case t.Kind() == reflect.Struct:
		var m orderedMap
		for _, f := range schemaOf(t).fields {
			m = append(m, member{f.key, toTree(v.FieldByIndex(f.index))})
		}
		return m
	case t.Kind() == reflect.Slice:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = toTree(v.Index(i))
		}
		return out
	case t.Kind() == reflect.Map:
		m := orderedMap{}
		keys := v.MapKeys()
		strs := make(map[string]reflect.Value, len(keys))
		for _, k := range keys {
			strs[k.String()] = v.MapIndex(k)
		}
		for _, k := range sortedKeys(strs) {
			m = append(m, member{k, toTree(strs[k])})
		}
		return m
	default:
		return v.Interface()
	}
}

// formatDuration writes d as time.Duration.String does, without the zero
// units it appends: "1m", not "1m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
