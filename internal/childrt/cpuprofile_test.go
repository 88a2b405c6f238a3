package childrt

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestCPUProfile: with PHASED_CHILD_CPU_PROFILE set, the profile started
// when the child is ready is written to the folder when it stops; without
// it, nothing is.
func TestCPUProfile(t *testing.T) {
	r := &Runtime{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	dir := t.TempDir()
	t.Setenv(CPUProfileEnv, "")
	r.startCPUProfile()()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("a profile without %s: %v", CPUProfileEnv, ents)
	}
	t.Setenv(CPUProfileEnv, dir)
	r.startCPUProfile()()
	b, err := os.ReadFile(filepath.Join(dir, "cpu-"+strconv.Itoa(os.Getpid())+".pprof"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b { // pprof's gzipped protobuf
		t.Fatalf("not a profile: % x", b[:min(len(b), 8)])
	}
}
