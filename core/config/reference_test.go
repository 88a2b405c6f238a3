package config

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// referenceFile is the complete, commented reference configuration.
const referenceFile = "../../examples/phased.yaml"

// uncomment turns on the reference's optional lines: those that start with
// "#~" (after indentation) lose the marker.
func uncomment(text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		trimmed := strings.TrimLeft(l, " ")
		if strings.HasPrefix(trimmed, "#~") {
			lines[i] = l[:len(l)-len(trimmed)] + strings.TrimPrefix(trimmed, "#~")
		}
	}
	return strings.Join(lines, "\n")
}

// schemaKeys lists every dotted key of type t's schema, as the loader reads
// it (schemaOf): a list's elements are written KEY[], a pointer is its
// element. Open sections (mpm's settings) and free maps end a path.
func schemaKeys(prefix string, t reflect.Type) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		if t.Kind() == reflect.Slice {
			prefix += "[]"
		}
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == durationType {
		return nil
	}
	var out []string
	for _, f := range schemaOf(t).fields {
		key := join(prefix, f.key)
		out = append(out, key)
		out = append(out, schemaKeys(key, f.typ)...)
	}
	return out
}

// has reports whether the YAML document v sets the dotted key (KEY[] means
// some element of the list KEY sets the rest).
func has(v any, key string) bool {
	if key == "" {
		return true
	}
	first, rest, _ := strings.Cut(key, ".")
	name, list := strings.CutSuffix(first, "[]")
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	sub, ok := m[name]
	if !ok {
		return false
	}
	if !list {
		return has(sub, rest)
	}
	items, _ := sub.([]any)
	return slices.ContainsFunc(items, func(e any) bool { return has(e, rest) })
}

// TestReferenceConfigCoversEverything: examples/phased.yaml names every key
// of the configuration's schema (walked through the same schema the loader
// checks layers against), active or behind "#~", and loads as it is and
// with every "#~" line turned on.
func TestReferenceConfigCoversEverything(t *testing.T) {
	b, err := os.ReadFile(referenceFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(LoadOptions{File: referenceFile}); err != nil {
		t.Fatalf("the reference does not load: %v", err)
	}
	full := uncomment(string(b))
	dir := t.TempDir()
	fullFile := dir + "/phased.yaml"
	if err := os.WriteFile(fullFile, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(LoadOptions{File: fullFile}); err != nil {
		t.Fatalf("the reference with its #~ lines turned on does not load: %v", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(full), &doc); err != nil {
		t.Fatal(err)
	}
	keys := schemaKeys("", configType)
	if len(keys) < 70 { // the walk works: the schema has some 80
		t.Fatalf("the schema walk found only %d keys: %v", len(keys), keys)
	}
	for _, key := range keys {
		if !has(doc, key) {
			t.Errorf("examples/phased.yaml does not name %s", key)
		}
	}
}
