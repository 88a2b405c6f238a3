package config

import (
	"reflect"
	"testing"
)

// TestCloneSharesNothing: a clone equals the original, and changing every
// slice, map and nested value of the clone leaves the original as it was.
func TestCloneSharesNothing(t *testing.T) {
	c := &Config{
		Listen: []string{"127.0.0.1:8080"},
		MPM:    MPM{Name: "worker", Settings: map[string]any{"start_servers": 2, "nested": map[string]any{"a": []any{1}}}},
		App:    App{Command: []string{"./app"}, Env: map[string]string{"A": "1"}},
		Hooks:  []Hook{{Name: "h", Phase: "post-config", Exec: []string{"true"}, Before: []string{"x"}}},
	}
	want := &Config{
		Listen: []string{"127.0.0.1:8080"},
		MPM:    MPM{Name: "worker", Settings: map[string]any{"start_servers": 2, "nested": map[string]any{"a": []any{1}}}},
		App:    App{Command: []string{"./app"}, Env: map[string]string{"A": "1"}},
		Hooks:  []Hook{{Name: "h", Phase: "post-config", Exec: []string{"true"}, Before: []string{"x"}}},
	}
	d := c.Clone()
	if !reflect.DeepEqual(c, d) {
		t.Fatalf("clone differs:\n%+v\n%+v", c, d)
	}
	d.Listen[0] = "changed"
	d.MPM.Settings["start_servers"] = 9
	d.MPM.Settings["nested"].(map[string]any)["a"].([]any)[0] = 9
	d.App.Command[0] = "changed"
	d.App.Env["A"] = "changed"
	d.Hooks[0].Exec[0] = "changed"
	d.Hooks[0].Before[0] = "changed"
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("changing the clone changed the original:\n%+v", c)
	}
	if (*Config)(nil).Clone() != nil {
		t.Fatal("nil clone")
	}
}
