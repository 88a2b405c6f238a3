package childrt

import (
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
)

// CPUProfileEnv names a folder into which a child writes a CPU profile of
// its serving (cpu-PID.pprof): from the moment it is ready until it stops
// serving (a drain, a stop), so a load run against a server that is then
// stopped is what the profile holds. A debugging aid, as HeapProfileEnv:
// the master passes variables named PHASED_* to no child, so set it in
// app.env (bench/apps/RESULTS.md shows how the app bench uses it).
const CPUProfileEnv = "PHASED_CHILD_CPU_PROFILE"

// startCPUProfile starts the profile CPUProfileEnv asks for and returns
// what ends it and writes it out; a no-op without the variable, or when the
// file cannot be made (warned about: a profile asked for and missing
// should say why).
func (r *Runtime) startCPUProfile() (stop func()) {
	dir := os.Getenv(CPUProfileEnv)
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, "cpu-"+strconv.Itoa(os.Getpid())+".pprof"))
	if err == nil {
		if err = pprof.StartCPUProfile(f); err != nil {
			f.Close()
		}
	}
	if err != nil {
		r.Log.Warn("cannot write the CPU profile", "env", CPUProfileEnv, "dir", dir, "err", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			r.Log.Warn("cannot write the CPU profile", "env", CPUProfileEnv, "dir", dir, "err", err)
		}
	}
}
