package scoreboard

import "strconv"

// State is what a worker slot (or a whole process) is doing, as in Apache's
// scoreboard. The zero value is Dead, so a fresh segment reads as a board of
// open slots.
type State uint32

// The states, in Apache's order, each with the letter mod_status prints.
const (
	Dead      State = iota // '.' open slot: no process (or thread) holds it
	Starting               // 'S' starting up
	Idle                   // '_' waiting for a connection
	Reading                // 'R' reading a request
	Writing                // 'W' handling the request and sending the reply
	KeepAlive              // 'K' keep-alive connection, waiting for the next request
	Logging                // 'L' writing the access log
	Closing                // 'C' closing the connection
	Graceful               // 'G' gracefully finishing: retiring after its current work
	IdleKill               // 'I' idle worker being cleaned up by the process manager
)

// NumStates is the number of defined states; every valid State is below it.
const NumStates = 10

var stateLetters = [NumStates]byte{'.', 'S', '_', 'R', 'W', 'K', 'L', 'C', 'G', 'I'}

var stateNames = [NumStates]string{
	"dead", "starting", "idle", "reading", "writing",
	"keepalive", "logging", "closing", "graceful", "idlekill",
}

// Valid reports whether s is one of the defined states. A slot holds an
// invalid state only if something other than this package wrote to it.
func (s State) Valid() bool { return s < NumStates }

// Letter returns the one-letter code Apache's mod_status prints for s in its
// scoreboard map ('_' idle, 'W' writing, '.' open slot, ...), or '?' for an
// invalid state.
func (s State) Letter() byte {
	if !s.Valid() {
		return '?'
	}
	return stateLetters[s]
}

// String returns the lower-case name of s ("idle", "reading", "keepalive",
// ...), or "State(N)" for an invalid state.
func (s State) String() string {
	if !s.Valid() {
		return "State(" + strconv.FormatUint(uint64(s), 10) + ")"
	}
	return stateNames[s]
}
