package tickets

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRotateAndShare(t *testing.T) {
	k, err := Create()
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	first, seq := k.Keys()
	if len(first) != 1 || first[0] == ([32]byte{}) {
		t.Fatalf("a new segment's keys: %v", first)
	}
	// A child's read-only view of the same segment.
	dup, err := unix.Dup(int(k.File().Fd()))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(os.NewFile(uintptr(dup), "child"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range Keep + 2 {
		if err := k.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
	keys, seq2 := c.Keys()
	if len(keys) != Keep || seq2 == seq || keys[Keep-1] == first[0] {
		t.Fatalf("after rotations the child sees %d keys (seq %d, was %d); the first key must be gone", len(keys), seq2, seq)
	}
	if mine, _ := k.Keys(); mine[0] != keys[0] {
		t.Fatal("the child does not see the master's newest key")
	}
	// A child cannot map the segment writable: the master sealed it.
	if _, err := unix.Mmap(dup, 0, 64, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err == nil {
		t.Fatal("a child mapped the ticket keys writable")
	}
}

// TestCreateWith: a new master's segment made from the old master's keys
// holds them, newest first, and rotates on from them.
func TestCreateWith(t *testing.T) {
	old, err := Create()
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	old.Rotate()
	keys, _ := old.Keys()
	k, err := CreateWith(keys)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	got, _ := k.Keys()
	if len(got) != 2 || got[0] != keys[0] || got[1] != keys[1] {
		t.Fatalf("the new segment holds %d keys, want the old two in order", len(got))
	}
	k.Rotate()
	if got, _ = k.Keys(); len(got) != 3 || got[1] != keys[0] {
		t.Fatalf("after a rotation: %d keys", len(got))
	}
}
