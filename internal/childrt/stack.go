package childrt

// A goroutine starts on a 2 KB stack, and serving a request on the fast
// path takes it to 8 KB: two growths a connection, each a copy of the
// stack that walks every frame on it and reads, for each function, its
// entries of the binary's function table (.gopclntab) and its stack maps
// (.rodata). In a child that has let go of the start's pages of the binary
// (memory.go), the first requests' growths fault those entries back in,
// 64 KB around each fault: about 30 faults, 2 MB more of the binary
// mapped and 1 MiB more PSS for a child that has served three requests
// (bench/compare/MEMORY.md). Grown once at the goroutine's root instead,
// the stack holds one frame when it is copied, whose entries stay mapped,
// and the serving frames never move.

// stackPad is the frame growStack reserves: more than a 4 KB stack holds
// at the root with the runtime's guard (so the stack is grown to 8 KB at
// once), less than what would take it to 16 KB, with the race detector's
// larger guard too.
const stackPad = 5 << 10

// growStack grows the calling goroutine's stack to 8 KB, what serving a
// request needs, while the goroutine's stack is one frame deep. It is
// called first thing in the goroutines that serve connections (one per
// connection) and accept them (see the note above).
//
//go:noinline
func growStack() {
	var pad [stackPad]byte
	keepFrame(pad[:])
}

// keepFrame keeps growStack's pad in its frame: a noinline call that
// takes it, so that the compiler neither drops the array nor moves it to
// the heap.
//
//go:noinline
func keepFrame(b []byte) { _ = b }
