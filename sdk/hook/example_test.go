package hook_test

import (
	"context"
	"encoding/json"

	"github.com/phasedhq/phased/sdk/hook"
)

// warmup is a hook plugin that checks its configuration and warms a cache
// once the configuration is final.
type warmup struct{}

var (
	_ hook.Hook           = warmup{}
	_ hook.Configurer     = warmup{}
	_ hook.PostConfigurer = warmup{}
)

func (w warmup) Describe(context.Context, *hook.DescribeRequest) (*hook.DescribeResponse, error) {
	return hook.Implemented(w), nil
}

func (warmup) Configure(_ context.Context, req *hook.PhaseRequest) (*hook.ConfigureResponse, error) {
	var cfg struct {
		Warmup struct{ URL string } `json:"warmup"`
	}
	if err := json.Unmarshal(req.ConfigJSON, &cfg); err != nil {
		return nil, err
	}
	if cfg.Warmup.URL == "" {
		return &hook.ConfigureResponse{Errors: []hook.ConfigError{{Key: "warmup.url", Message: "is required"}}}, nil
	}
	return &hook.ConfigureResponse{}, nil
}

func (warmup) PostConfig(ctx context.Context, req *hook.PhaseRequest) (*hook.PhaseResponse, error) {
	if req.DryRun {
		return &hook.PhaseResponse{}, nil
	}
	hook.Logger().Info("warming the cache", "pass", req.Pass, "generation", req.Generation)
	return &hook.PhaseResponse{}, nil
}

// A hook plugin's main is one call.
func ExampleServe() {
	hook.Serve(warmup{})
}
