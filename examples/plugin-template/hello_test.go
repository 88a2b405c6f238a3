package main

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/phasedhq/phased/sdk/hook"
	"github.com/phasedhq/phased/sdk/sdktest"
)

func TestHello(t *testing.T) {
	var logs strings.Builder
	c := sdktest.Hook(t, &Hello{log: slog.New(slog.NewTextHandler(&logs, nil))}) // the master's gRPC path, in-process

	d, err := c.Describe(t.Context(), &hook.DescribeRequest{Settings: map[string]any{"greeting": "hi"}})
	if err != nil || d.Name != "hello" || len(d.Phases) != 1 || d.Phases[0] != hook.PhasePostConfig {
		t.Fatalf("Describe = %+v, %v", d, err)
	}
	_, err = c.Describe(t.Context(), &hook.DescribeRequest{Settings: map[string]any{"greting": "hi"}})
	if se, ok := errors.AsType[*hook.SettingError](err); !ok || se.Key != "greting" {
		t.Fatalf("Describe with a misspelt setting = %v, want a SettingError naming greting", err)
	}

	req := &hook.PhaseRequest{Phase: hook.PhasePostConfig, Pass: 2, Generation: 1, Settings: map[string]any{"greeting": "hi"}}
	if _, err := c.RunPhase(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "msg=hi") {
		t.Fatalf("greeting not logged:\n%s", logs.String())
	}
}
