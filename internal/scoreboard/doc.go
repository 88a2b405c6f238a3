// Package scoreboard is phased's version of Apache's scoreboard: a table in
// shared memory in which every child process, and every worker inside it,
// says what it is doing, so that the master can decide when to spawn or
// retire children and the status page can show the server at a glance.
//
// # Why shared memory
//
// A worker updates its slot twice per request at least. Telling the master
// through a pipe or a socket would cost a system call each time, and the
// master would have to read them all. Instead the master creates a memory
// segment, every child maps it, and a worker's update is a few atomic stores
// into its own slot: no system call, no lock, no allocation (see
// BenchmarkRequest). The master reads the slots whenever it likes, with
// atomic loads, and never makes a child wait.
//
// # One segment per generation
//
// The master calls Create once per generation of children (each graceful
// restart starts a new generation), sized for the generation's maximum:
// server_limit process slots of threads_per_child worker slots each (one for
// prefork). It passes the segment's descriptor, Board.File, to every child
// of that generation through exec.Cmd.ExtraFiles, and tells the child which
// process slot is its own. The child maps it with Open, sets its workers
// Idle, and from then on writes only its own slots.
//
// Children of an old generation that are still draining keep writing to the
// old segment; the new generation gets a fresh one. So draining children
// never occupy slots the new generation needs, and Apache's "scoreboard is
// full, not at MaxRequestWorkers" cannot happen. The master closes an old
// segment once the last child of its generation has gone. The segment is an
// anonymous memory file: there is no path to clean up, and the kernel frees
// it when the last descriptor and mapping are gone, even after a crash.
//
// # Who writes what
//
//	master  Create, SetGeneration; per process slot, when it spawns a child:
//	        ProcSlot.SetPID, SetGeneration; after reaping it: Board.ClearProc
//	child   Open; ProcSlot.SetState, SetQuiescing (when it starts retiring),
//	        Opened (per connection accepted), Closed (when it closes)
//	worker  its own WorkerSlot, from one goroutine at a time:
//	        SetState(Idle) ... StartConn, StartRequest, EndRequest,
//	        SetState(KeepAlive / Closing / Idle)
//	anyone  Board.Snapshot, Snapshot.Summary, Snapshot.Letters, the getters
//
// Each worker slot keeps a sequence lock around its request line, request
// start time and counters, so a reader never sees half of one request line
// glued to half of another, even while the owner is writing.
//
// # The letters
//
// Letters prints the map exactly as mod_status does, one character per
// worker slot:
//
//	_  Idle       waiting for a connection
//	S  Starting   starting up
//	R  Reading    reading a request
//	W  Writing    handling a request, sending the reply
//	K  KeepAlive  keep-alive connection, waiting for the next request
//	L  Logging    writing the access log
//	C  Closing    closing the connection
//	G  Graceful   gracefully finishing before the process retires
//	I  IdleKill   idle worker being cleaned up
//	.  Dead       open slot: no process or thread holds it
//
// Summary counts idle and busy workers by mod_status's own rules (documented
// on Summary), so figures from phased and from Apache mean the same thing.
//
// The package is part of phased's public SDK, used by the master and by
// children linked from Go applications alike. It imports only the standard
// library and golang.org/x/sys/unix, and runs on Linux (memfd_create).
package scoreboard
