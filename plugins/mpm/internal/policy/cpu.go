package policy

import (
	"bytes"
	"os"
	"strconv"
)

// SaturatedCPU is the share of the machine's CPU time, over the last
// maintenance interval, above which the CPUs are the limit: then more
// prefork children busy with short connections serve nothing sooner
// (QueueWait). Below it, children that look busy may be waiting for
// something else (an app's I/O) and are left alone.
const SaturatedCPU = 0.9

// cpuMeter reads the machine's CPU use from /proc/stat.
type cpuMeter struct {
	total, idle uint64
	seen        bool
}

// busy returns the share of CPU time the machine spent busy since the
// last call; false on the first call or when /proc/stat cannot be read.
func (m *cpuMeter) busy() (float64, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	fields := bytes.Fields(line)
	if len(fields) < 5 || string(fields[0]) != "cpu" {
		return 0, false
	}
	var total, idle uint64
	for i, f := range fields[1:] {
		v, err := strconv.ParseUint(string(f), 10, 64)
		if err != nil {
			return 0, false
		}
		if i >= 8 {
			break // guest time is counted in user time already
		}
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	prevTotal, prevIdle, seen := m.total, m.idle, m.seen
	m.total, m.idle, m.seen = total, idle, true
	if !seen || total <= prevTotal || idle < prevIdle {
		return 0, false
	}
	dt := float64(total - prevTotal)
	return 1 - float64(idle-prevIdle)/dt, true
}
