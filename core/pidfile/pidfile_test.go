package pidfile

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestAcquireWritesAndLocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "phased.pid")
	p, err := Acquire(path, 4242, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if got := Read(path); got != 4242 {
		t.Fatalf("Read = %d", got)
	}
	if !Held(path) {
		t.Fatal("lock not held")
	}
	_, err = Acquire(path, 4343, quiet)
	var running *RunningError
	if !errors.As(err, &running) || running.PID != 4242 {
		t.Fatalf("second Acquire = %v, want RunningError for 4242", err)
	}
	if err.Error() != "phased (pid 4242) already running (pid file "+path+")" {
		t.Fatalf("message: %q", err)
	}
	if err := p.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pid file still there: %v", err)
	}
}

func TestStaleFileIsTakenOver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "phased.pid")
	// A pid that is this very process: alive, but it holds no lock, so it is
	// not a master.
	for _, content := range []string{"999999\n", "1\n", "garbage", ""} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := Acquire(path, 77, quiet)
		if err != nil {
			t.Fatalf("content %q: %v", content, err)
		}
		if Read(path) != 77 {
			t.Fatalf("content %q: not rewritten", content)
		}
		p.Remove()
	}
}

func TestRemoveLeavesAnotherMastersFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "phased.pid")
	p, err := Acquire(path, 1, quiet)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	if err := os.WriteFile(path, []byte("2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.Remove(); err != nil {
		t.Fatal(err)
	}
	if Read(path) != 2 {
		t.Fatal("removed a file this process did not write")
	}
}

// TestOneOfManyStartingAtOnceWins: masters starting at the same moment with
// no pid file yet: exactly one gets it, the others are told it runs, and the
// file names the winner.
func TestOneOfManyStartingAtOnceWins(t *testing.T) {
	for round := range 20 {
		path := filepath.Join(t.TempDir(), "phased.pid")
		const n = 8
		var wg sync.WaitGroup
		start := make(chan struct{})
		files := make([]*File, n)
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				files[i], errs[i] = Acquire(path, 100+i, quiet)
			}()
		}
		close(start)
		wg.Wait()
		winner := -1
		for i := range n {
			var running *RunningError
			switch {
			case errs[i] == nil && winner < 0:
				winner = i
			case errs[i] == nil:
				t.Fatalf("round %d: masters %d and %d both hold the pid file", round, winner, i)
			case !errors.As(errs[i], &running):
				t.Fatalf("round %d: master %d: %v", round, i, errs[i])
			}
		}
		if winner < 0 || Read(path) != 100+winner {
			t.Fatalf("round %d: winner %d, file names %d", round, winner, Read(path))
		}
		files[winner].Remove()
	}
}
