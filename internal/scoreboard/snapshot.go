package scoreboard

// Snapshot is a copy of a whole board, for the master's maintenance and the
// status page. Each worker's record is consistent on its own (see
// WorkerSlot); different slots are read one after another, not at a single
// instant, as in Apache.
type Snapshot struct {
	// Generation is the board's generation (Board.Generation).
	Generation int
	// Procs holds one record per process slot.
	Procs []ProcInfo
	// Workers holds, for each process slot i, its ThreadsPerProc worker
	// records: Workers[i][j] is Board.Worker(i, j).
	Workers [][]WorkerInfo
}

// Snapshot copies the whole board. It allocates the result (a handful of
// allocations whatever the board's size) and takes no lock: writers are
// never held up by it.
func (b *Board) Snapshot() Snapshot {
	procs, threads := b.procs, b.threads
	snap := Snapshot{
		Generation: b.Generation(),
		Procs:      make([]ProcInfo, procs),
		Workers:    make([][]WorkerInfo, procs),
	}
	flat := make([]WorkerInfo, procs*threads)
	// All request lines go into one buffer, turned into one string and
	// sliced, instead of one allocation per line.
	lines := make([]byte, 0, procs*threads*lineSize)
	ends := make([]int, procs*threads)
	var line [lineSize]byte
	for i := 0; i < procs; i++ {
		snap.Procs[i] = b.Proc(i).Snapshot()
		snap.Workers[i] = flat[i*threads : (i+1)*threads : (i+1)*threads]
		for j := 0; j < threads; j++ {
			n := b.Worker(i, j).read(&snap.Workers[i][j], &line)
			lines = append(lines, line[:n]...)
			ends[i*threads+j] = len(lines)
		}
	}
	all := string(lines)
	start := 0
	for k := range flat {
		flat[k].RequestLine = all[start:ends[k]]
		start = ends[k]
	}
	return snap
}

// Summary is what mod_status prints above its scoreboard map, computed from
// a Snapshot.
//
// Idle and Busy follow mod_status (Apache 2.4) exactly. Only workers of a
// live process count: one whose process slot has a pid and is not
// quiescing. Among those,
//
//   - idle ("IdleWorkers") is a worker in state Idle whose process belongs
//     to the board's generation;
//   - graceful ("GracefulWorkers") is a worker in state Graceful;
//   - busy ("BusyWorkers") is a worker in any other state but Dead,
//     Starting, IdleKill and Idle: Reading, Writing, KeepAlive, Logging and
//     Closing (Apache 2.4's mod_status takes graceful workers out of busy).
//
// So a Starting worker is neither idle nor busy, and the workers of a
// retiring child drop out of both counts as soon as it sets quiescing.
type Summary struct {
	// ByState counts every worker slot by state, whatever its process: the
	// letter map's histogram (ByState[Idle] is the number of '_').
	// Slots holding an invalid state are not counted here.
	ByState [NumStates]int
	// Idle is the number of idle workers, as defined above.
	Idle int
	// Busy is the number of busy workers, as defined above.
	Busy int
	// Graceful is the number of graceful workers, as defined above.
	Graceful int
	// Procs is the number of process slots held by a process (pid set),
	// quiescing or not.
	Procs int
	// Slots is the total number of worker slots on the board.
	Slots int
	// Requests is the total of every slot's request count ("Total
	// Accesses"), since the board was created.
	Requests uint64
	// Bytes is the total of every slot's byte count ("Total kBytes" x 1024).
	Bytes uint64
}

// Summary counts the snapshot's workers; see Summary for the definitions.
func (s Snapshot) Summary() Summary {
	var sum Summary
	for i, workers := range s.Workers {
		var p ProcInfo
		if i < len(s.Procs) {
			p = s.Procs[i]
		}
		live := p.PID != 0 && !p.Quiescing
		if p.PID != 0 {
			sum.Procs++
		}
		for _, w := range workers {
			sum.Slots++
			sum.Requests += w.Requests
			sum.Bytes += w.Bytes
			if w.State.Valid() {
				sum.ByState[w.State]++
			}
			if !live {
				continue
			}
			switch w.State {
			case Idle:
				if p.Generation == s.Generation {
					sum.Idle++
				}
			case Dead, Starting, IdleKill:
			case Graceful:
				sum.Graceful++
			default:
				sum.Busy++
			}
		}
	}
	return sum
}

// Letters returns the scoreboard map as mod_status prints it: one letter per
// worker slot, process by process ("_W_K...."). See State for the letters;
// an invalid state prints as '?'.
func (s Snapshot) Letters() string {
	n := 0
	for _, workers := range s.Workers {
		n += len(workers)
	}
	b := make([]byte, 0, n)
	for _, workers := range s.Workers {
		for _, w := range workers {
			b = append(b, w.State.Letter())
		}
	}
	return string(b)
}
