package zerodowntime

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/e2e"
)

// TestRestartFile: with app.restart_file, touching the file restarts the
// children gracefully, as touching Passenger's tmp/restart.txt restarts an
// app: the file as it is at start is no change; its appearing, and each
// newer modification time, is a graceful restart (a new generation, the
// log naming the file) with nothing lost; touching it again while nothing
// changed restarts nothing.
func TestRestartFile(t *testing.T) {
	s := e2e.StartServer(t, "app:\n  restart_file: tmp/restart.txt\n", func(dir string) {
		os.MkdirAll(filepath.Join(dir, "tmp"), 0o755)
	})
	file := filepath.Join(s.Dir, "tmp", "restart.txt")
	generation := func() int { return int(s.Status(t)["generation"].(float64)) }
	waitGeneration := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); generation() != want; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("generation %d 10 s after the restart file changed, want %d; log:\n%s", generation(), want, s.Log)
			}
		}
	}
	time.Sleep(1500 * time.Millisecond) // a look or two with no file: no change
	if g := generation(); g != 1 {
		t.Fatalf("generation %d before the file exists", g)
	}
	underLoad(t, s, true, func() {
		if err := os.WriteFile(file, nil, 0o644); err != nil { // appears: a restart
			t.Fatal(err)
		}
		waitGeneration(2)
	})
	s.WaitLog(t, "app.restart_file changed: restarting gracefully", 1, 5*time.Second)
	later := time.Now().Add(time.Minute) // a newer modification time: a restart
	if err := os.Chtimes(file, later, later); err != nil {
		t.Fatal(err)
	}
	waitGeneration(3)
	time.Sleep(2500 * time.Millisecond) // untouched since: no restart
	if g := generation(); g != 3 {
		t.Fatalf("generation %d with the file untouched since generation 3", g)
	}
	if n := s.Log.Count("app.restart_file changed"); n != 2 {
		t.Fatalf("%d restarts logged for the file, want 2", n)
	}
}
