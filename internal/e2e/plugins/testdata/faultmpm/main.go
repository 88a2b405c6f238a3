// Command faultmpm is an MPM plugin for phased's end-to-end tests: a fixed
// pool of two worker children that misbehaves on demand, steered by files
// in the master's server_root (the plugin's working directory):
//
//   - MPM_HANG: Maintain never answers (it ignores its context), as a
//     plugin stuck on a lock would.
//   - MPM_CRASH_AT_START: the process exits 3 before it serves, so every
//     relaunch fails.
//
// The first Maintain a process answers carries a log record naming its pid,
// so a test can tell which process maintains. It imports only sdk/.
package main

import (
	"context"
	"maps"
	"os"
	"slices"
	"strconv"
	"sync"

	"github.com/phasedhq/phased/sdk/mpm"
)

const children = 2

type faulty struct {
	first sync.Once
}

func (*faulty) Configure(_ context.Context, req *mpm.ConfigureRequest) (*mpm.ConfigureResponse, error) {
	if keys := slices.Sorted(maps.Keys(req.Settings)); len(keys) > 0 {
		return nil, &mpm.SettingError{Key: keys[0], Msg: "faultmpm takes no settings"}
	}
	return &mpm.ConfigureResponse{Model: mpm.Worker, ThreadsPerChild: 4,
		ServerLimit: children, StartServers: children, MaxRequestWorkers: 4 * children}, nil
}

func (f *faulty) Maintain(_ context.Context, req *mpm.MaintainRequest) (*mpm.MaintainResponse, error) {
	if exists("MPM_HANG") {
		select {} // never answers, whatever the master's deadline
	}
	resp := &mpm.MaintainResponse{}
	f.first.Do(func() {
		resp.Logs = append(resp.Logs, mpm.Log{Level: mpm.LevelInfo, Message: "faultmpm maintains",
			Attrs: map[string]string{"plugin_pid": strconv.Itoa(os.Getpid())}})
	})
	if missing := children - len(req.Children); missing > 0 {
		resp.Actions = append(resp.Actions, mpm.Action{Kind: mpm.Spawn, Count: missing, Reason: "fixed pool"})
	}
	return resp, nil
}

func exists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

func main() {
	if exists("MPM_CRASH_AT_START") {
		mpm.Logger().Error("crashing at start, as MPM_CRASH_AT_START asks")
		os.Exit(3)
	}
	mpm.Serve(&faulty{})
}
