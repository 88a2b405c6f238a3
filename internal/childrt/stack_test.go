package childrt

import (
	"testing"
	"unsafe"
)

// servingDepth is about the stack serving a request takes below a
// connection's goroutine on the fast path (its stack grows to 8 KB).
const servingDepth = 5 << 10

// useStack takes about n bytes of stack in frames of 512.
//
//go:noinline
func useStack(n int) byte {
	var frame [512]byte
	frame[n%len(frame)] = byte(n)
	if n <= len(frame) {
		return frame[0]
	}
	return useStack(n-len(frame)) + frame[n%len(frame)]
}

// stackMoves reports whether a new goroutine's stack is copied (grown)
// while it takes servingDepth bytes of stack, after growStack if grow.
func stackMoves(grow bool) bool {
	moved := make(chan bool)
	go func() {
		if grow {
			growStack()
		}
		var local byte
		before := uintptr(unsafe.Pointer(&local))
		useStack(servingDepth)
		moved <- uintptr(unsafe.Pointer(&local)) != before
	}()
	return <-moved
}

// TestGrowStackBeforeServing: after growStack a goroutine holds what
// serving a request takes without its stack being grown again (each
// growth walks every frame on the stack and faults the function table of
// the binary back in: stack.go); without it, the stack moves.
func TestGrowStackBeforeServing(t *testing.T) {
	if !stackMoves(false) {
		t.Fatal("a new goroutine took servingDepth of stack without growing: the test cannot tell")
	}
	if stackMoves(true) {
		t.Error("the stack grown by growStack was grown again while taking servingDepth")
	}
}
