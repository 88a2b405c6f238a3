// Command minimal is the smallest useful phased MPM: a fixed pool of
// prefork children (`mpm: {name: ./bin/minimal, children: 4}`).
package main

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/phasedhq/phased/sdk/mpm"
)

type fixed struct{ children atomic.Int64 }

func (f *fixed) Configure(_ context.Context, req *mpm.ConfigureRequest) (*mpm.ConfigureResponse, error) {
	n := 2
	for key, v := range req.Settings {
		i, ok := v.(int)
		if key != "children" || !ok || i < 1 {
			return nil, &mpm.SettingError{Key: key, Msg: fmt.Sprintf("the one key is children, a number ≥ 1; got %v", v)}
		}
		n = i
	}
	f.children.Store(int64(n))
	return &mpm.ConfigureResponse{Model: mpm.Prefork, ThreadsPerChild: 1,
		ServerLimit: n, StartServers: n, MaxRequestWorkers: n, AcceptMutex: "epoll"}, nil
}

func (f *fixed) Maintain(_ context.Context, req *mpm.MaintainRequest) (*mpm.MaintainResponse, error) {
	resp := &mpm.MaintainResponse{}
	if missing := int(f.children.Load()) - len(req.Children); missing > 0 {
		resp.Actions = []mpm.Action{{Kind: mpm.Spawn, Count: missing, Reason: "fixed pool"}}
	}
	return resp, nil
}

func main() {
	mpm.Logger().Info("fixed-pool MPM starting") // stderr, relayed to phased's error log
	mpm.Serve(&fixed{})
}
