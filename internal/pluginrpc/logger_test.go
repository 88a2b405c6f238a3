package pluginrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
)

// TestSlogHandlerShape proves that the plugin's slog records come out as the
// hclog JSON lines go-plugin's host re-logs at their level.
func TestSlogHandlerShape(t *testing.T) {
	var buf bytes.Buffer
	hl := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Debug, JSONFormat: true})
	l := slog.New(&slogHandler{log: hl})

	l.Debug("hidden below trace? no, shown", "n", 1)
	l.Log(t.Context(), slog.LevelDebug-4, "trace is below the level")
	l.With("plugin", "warmup").WithGroup("req").Warn("slow", "took", 1500*time.Millisecond, "err", errors.New("boom"),
		slog.Group("peer", "addr", "127.0.0.1"))
	l.Log(t.Context(), slog.LevelInfo+2, "notice")
	l.Error("failed")

	var lines []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000000Z07:00", m["@timestamp"].(string)); err != nil {
			t.Errorf("@timestamp: %v", err)
		}
		lines = append(lines, m)
	}
	want := []struct{ level, msg string }{
		{"debug", "hidden below trace? no, shown"},
		{"warn", "slow"},
		{"info", "notice"},
		{"error", "failed"},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if lines[i]["@level"] != w.level || lines[i]["@message"] != w.msg {
			t.Errorf("line %d: %v, want %s %q", i, lines[i], w.level, w.msg)
		}
	}
	warn := lines[1]
	for k, v := range map[string]any{"plugin": "warmup", "req.took": "1.5s", "req.err": "boom", "req.peer.addr": "127.0.0.1"} {
		if warn[k] != v {
			t.Errorf("warn line %s = %v, want %v (line %v)", k, warn[k], v, warn)
		}
	}
}

func TestToHclog(t *testing.T) {
	for l, want := range map[slog.Level]hclog.Level{
		slog.LevelDebug - 4: hclog.Trace,
		slog.LevelDebug:     hclog.Debug,
		slog.LevelInfo:      hclog.Info,
		slog.LevelInfo + 2:  hclog.Info,
		slog.LevelWarn:      hclog.Warn,
		slog.LevelError:     hclog.Error,
		slog.LevelError + 4: hclog.Error,
	} {
		if got := ToHclog(l); got != want {
			t.Errorf("ToHclog(%v) = %v, want %v", l, got, want)
		}
	}
}
