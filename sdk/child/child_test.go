package child

import (
	"context"
	"errors"
	"testing"

	"github.com/phasedhq/phased/internal/childrt"
	"github.com/phasedhq/phased/internal/contract"
)

// TestExitChildInit keeps the SDK's exit status in step with the one the
// master reads.
func TestExitChildInit(t *testing.T) {
	if ExitChildInit != contract.ExitChildInit {
		t.Fatalf("ExitChildInit = %d, the master expects %d", ExitChildInit, contract.ExitChildInit)
	}
	if !errors.Is(ErrChildInit, childrt.ErrChildInit) {
		t.Fatal("ErrChildInit is not the runtime's")
	}
}

// TestOptions: each option reaches the runtime's App, and OnInit hands the
// hook the SDK's view of the runtime.
func TestOptions(t *testing.T) {
	var a childrt.App
	var seen *Runtime
	exited := false
	for _, o := range []Option{
		Addr("127.0.0.1:9"),
		OnInit(func(_ context.Context, rt *Runtime) error { seen = rt; return nil }),
		OnExit(func(context.Context) error { exited = true; return nil }),
		{}, // the zero Option does nothing
	} {
		if o.apply != nil {
			o.apply(&a)
		}
	}
	if a.Addr != "127.0.0.1:9" || len(a.Inits) != 1 || len(a.Exits) != 1 {
		t.Fatalf("App = %+v", a)
	}
	if err := a.Inits[0](context.Background(), &childrt.Runtime{Generation: 4, Slot: 2, Threads: 0, MasterPID: 9}); err != nil {
		t.Fatal(err)
	}
	if seen == nil || seen.Generation != 4 || seen.Slot != 2 || seen.Threads != 1 || seen.MasterPID != 9 {
		t.Errorf("OnInit saw %+v", seen)
	}
	a.Exits[0](context.Background())
	if !exited {
		t.Error("OnExit did not run")
	}
}
