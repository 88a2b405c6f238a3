package worker

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/phasedhq/phased/sdk/mpm"
)

func TestConfigure(t *testing.T) {
	// def is the answer to no settings at all: Apache 2.4 worker's defaults.
	def := mpm.ConfigureResponse{Model: mpm.Worker, ThreadsPerChild: 25, ServerLimit: 16, StartServers: 3,
		MaxRequestWorkers: 400, AcceptMutex: "none"}
	with := func(f func(r *mpm.ConfigureResponse)) mpm.ConfigureResponse {
		r := def
		f(&r)
		return r
	}
	tests := []struct {
		name     string
		settings map[string]any
		want     mpm.ConfigureResponse
	}{
		{"defaults", nil, def},
		{"worked example", workedExample, with(func(r *mpm.ConfigureResponse) {
			r.ThreadsPerChild, r.ServerLimit, r.StartServers, r.MaxRequestWorkers = 5, 3, 1, 15
		})},
		{"alias max_clients", map[string]any{"max_clients": 200}, with(func(r *mpm.ConfigureResponse) {
			r.ServerLimit, r.MaxRequestWorkers = 8, 200
		})},
		{"server_limit larger than needed", map[string]any{"server_limit": 100, "max_request_workers": 150}, with(func(r *mpm.ConfigureResponse) {
			r.ServerLimit, r.MaxRequestWorkers = 6, 150
		})},
		{"values as strings and floats", map[string]any{"threads_per_child": "50", "max_request_workers": 500.0, "keep_start_servers": "on"}, with(func(r *mpm.ConfigureResponse) {
			r.ThreadsPerChild, r.ServerLimit, r.MaxRequestWorkers = 50, 10, 500
		})},
		{"phased extras", map[string]any{"max_connections_per_child": 10000, "max_connections_per_child_jitter": 500,
			"max_memory_per_child": "512M", "accept_mutex": "flock"}, with(func(r *mpm.ConfigureResponse) {
			r.MaxConnectionsPerChild, r.MaxConnectionsPerChildJitter, r.MaxMemoryPerChild, r.AcceptMutex = 10000, 500, 512<<20, "flock"
		})},
		{"memory 1G", map[string]any{"max_memory_per_child": "1G"}, with(func(r *mpm.ConfigureResponse) { r.MaxMemoryPerChild = 1 << 30 })},
		{"memory 64KiB", map[string]any{"max_memory_per_child": "64KiB"}, with(func(r *mpm.ConfigureResponse) { r.MaxMemoryPerChild = 64 << 10 })},
		{"memory in bytes", map[string]any{"max_memory_per_child": 1048576}, with(func(r *mpm.ConfigureResponse) { r.MaxMemoryPerChild = 1 << 20 })},
		{"memory bytes as a string", map[string]any{"max_memory_per_child": "1000"}, with(func(r *mpm.ConfigureResponse) { r.MaxMemoryPerChild = 1000 })},

		// Every clamp of worker_check_config and worker_run, with its note.
		{"server_limit above the compile-time limit", map[string]any{"server_limit": 30000}, with(func(r *mpm.ConfigureResponse) {
			r.Notes = []string{"server_limit of 30000 exceeds compile-time limit of 20000 servers, decreasing to 20000"}
		})},
		{"server_limit 0", map[string]any{"server_limit": 0}, with(func(r *mpm.ConfigureResponse) {
			r.ServerLimit, r.StartServers, r.MaxRequestWorkers = 1, 1, 25
			r.Notes = []string{
				"server_limit of 0 not allowed, increasing to 1",
				"max_request_workers of 400 would require 16 servers and would exceed server_limit of 1, decreasing to 25; to increase, please see the server_limit setting",
				"start_servers of 3 exceeds the maximum of 1 servers, decreasing to 1",
			}
		})},
		{"thread_limit above the compile-time limit", map[string]any{"thread_limit": 20001}, with(func(r *mpm.ConfigureResponse) {
			r.Notes = []string{"thread_limit of 20001 exceeds compile-time limit of 20000 threads, decreasing to 20000"}
		})},
		{"thread_limit 0", map[string]any{"thread_limit": 0, "min_spare_threads": 2, "max_spare_threads": 4}, with(func(r *mpm.ConfigureResponse) {
			r.ThreadsPerChild, r.MaxRequestWorkers = 1, 16
			r.Notes = []string{
				"thread_limit of 0 not allowed, increasing to 1",
				"threads_per_child of 25 exceeds thread_limit of 1 threads, decreasing to 1; to increase, please see the thread_limit setting",
				"max_request_workers of 400 would require 400 servers and would exceed server_limit of 16, decreasing to 16; to increase, please see the server_limit setting",
			}
		})},
		{"threads_per_child above thread_limit", map[string]any{"threads_per_child": 100}, with(func(r *mpm.ConfigureResponse) {
			r.ThreadsPerChild, r.ServerLimit, r.MaxRequestWorkers = 64, 6, 384
			r.Notes = []string{
				"threads_per_child of 100 exceeds thread_limit of 64 threads, decreasing to 64; to increase, please see the thread_limit setting",
				"max_request_workers of 400 is not an integer multiple of threads_per_child of 64, decreasing to nearest multiple 384, for a maximum of 6 servers",
			}
		})},
		{"threads_per_child 0", map[string]any{"threads_per_child": 0, "max_request_workers": 16}, with(func(r *mpm.ConfigureResponse) {
			r.ThreadsPerChild, r.MaxRequestWorkers = 1, 16
			r.Notes = []string{"threads_per_child of 0 not allowed, increasing to 1"}
		})},
		{"max_request_workers below threads_per_child", map[string]any{"max_request_workers": 10}, with(func(r *mpm.ConfigureResponse) {
			r.ServerLimit, r.StartServers, r.MaxRequestWorkers = 1, 1, 25
			r.Notes = []string{
				"max_request_workers of 10 is less than threads_per_child of 25, increasing to 25; max_request_workers must be at least as large as the number of threads in a single server",
				"start_servers of 3 exceeds the maximum of 1 servers, decreasing to 1",
			}
		})},
		{"max_request_workers not a multiple", map[string]any{"max_request_workers": 410}, with(func(r *mpm.ConfigureResponse) {
			r.Notes = []string{"max_request_workers of 410 is not an integer multiple of threads_per_child of 25, decreasing to nearest multiple 400, for a maximum of 16 servers"}
		})},
		{"max_request_workers above server_limit", map[string]any{"max_request_workers": 1000}, with(func(r *mpm.ConfigureResponse) {
			r.Notes = []string{"max_request_workers of 1000 would require 40 servers and would exceed server_limit of 16, decreasing to 400; to increase, please see the server_limit setting"}
		})},
		{"start_servers 0", map[string]any{"start_servers": 0}, with(func(r *mpm.ConfigureResponse) {
			r.StartServers = 1
			r.Notes = []string{"start_servers of 0 not allowed, increasing to 1"}
		})},
		{"start_servers above the limit", map[string]any{"start_servers": 20}, with(func(r *mpm.ConfigureResponse) {
			r.StartServers = 16
			r.Notes = []string{"start_servers of 20 exceeds the maximum of 16 servers, decreasing to 16"}
		})},
		{"min_spare_threads 0", map[string]any{"min_spare_threads": 0}, with(func(r *mpm.ConfigureResponse) {
			r.Notes = []string{"min_spare_threads of 0 not allowed, increasing to 1 to avoid almost certain server failure"}
		})},
		{"max_spare_threads too small", map[string]any{"max_spare_threads": 80}, with(func(r *mpm.ConfigureResponse) {
			r.Notes = []string{"max_spare_threads of 80 is less than min_spare_threads + threads_per_child + 1, increasing to 101"}
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := New().Configure(context.Background(), &mpm.ConfigureRequest{Settings: tt.settings})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestConfigureErrors(t *testing.T) {
	tests := []struct {
		name     string
		settings map[string]any
		key, msg string
	}{
		{"unknown key", map[string]any{"x": 1}, "x", `unknown key "x" for the worker MPM`},
		{"prefork key", map[string]any{"min_spare_servers": 5}, "min_spare_servers", `unknown key "min_spare_servers" for the worker MPM`},
		{"first unknown key in order", map[string]any{"zz": 1, "aa": 1}, "aa", `unknown key "aa" for the worker MPM`},
		{"both names", map[string]any{"max_clients": 100, "max_request_workers": 100}, "max_clients", "max_clients is an alias of max_request_workers; set only one of them"},
		{"word for a number", map[string]any{"start_servers": "three"}, "start_servers", `want an integer, got "three"`},
		{"fraction", map[string]any{"threads_per_child": 2.5}, "threads_per_child", "want an integer, got 2.5"},
		{"list", map[string]any{"server_limit": []any{1}}, "server_limit", "want an integer, got []interface {}"},
		{"alias type", map[string]any{"max_clients": true}, "max_clients", "want an integer, got bool"},
		{"bool", map[string]any{"keep_start_servers": "maybe"}, "keep_start_servers", `want on or off, got "maybe"`},
		{"bool type", map[string]any{"keep_start_servers": 1}, "keep_start_servers", "want a boolean, got int"},
		{"negative max_connections_per_child", map[string]any{"max_connections_per_child": -1}, "max_connections_per_child", "must not be negative, got -1"},
		{"negative jitter", map[string]any{"max_connections_per_child_jitter": -5}, "max_connections_per_child_jitter", "must not be negative, got -5"},
		{"negative memory", map[string]any{"max_memory_per_child": -1}, "max_memory_per_child", "must not be negative, got -1"},
		{"bad memory", map[string]any{"max_memory_per_child": "12x"}, "max_memory_per_child", `want a size such as "512M" or "1G", got "12x"`},
		{"huge memory", map[string]any{"max_memory_per_child": "99999999999T"}, "max_memory_per_child", `size "99999999999T" is out of range`},
		{"accept_mutex value", map[string]any{"accept_mutex": "fcntl"}, "accept_mutex", `want one of epoll, flock, none, got "fcntl"`},
		{"accept_mutex type", map[string]any{"accept_mutex": 1}, "accept_mutex", "want one of epoll, flock, none, got int"},
		{"event key", map[string]any{"async_request_worker_factor": 2}, "async_request_worker_factor", `unknown key "async_request_worker_factor" for the worker MPM`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New().Configure(context.Background(), &mpm.ConfigureRequest{Settings: tt.settings})
			var se *mpm.SettingError
			if !errors.As(err, &se) {
				t.Fatalf("got %v, want a *mpm.SettingError", err)
			}
			if se.Key != tt.key || se.Msg != tt.msg {
				t.Errorf("got key %q msg %q, want key %q msg %q", se.Key, se.Msg, tt.key, tt.msg)
			}
		})
	}
}

// TestConfigureErrorKeepsConfig checks that a rejected configuration leaves
// the previous one in force.
func TestConfigureErrorKeepsConfig(t *testing.T) {
	p := newPolicy()
	ctx := context.Background()
	if _, err := p.Configure(ctx, &mpm.ConfigureRequest{Settings: workedExample}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Configure(ctx, &mpm.ConfigureRequest{Settings: map[string]any{"bogus": 1}}); err == nil {
		t.Fatal("bogus key accepted")
	}
	if got := p.Core().Config().ServerLimit; got != 3 {
		t.Errorf("server limit %d after a failed configure, want 3", got)
	}
}

func TestCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := New()
	if _, err := p.Configure(ctx, &mpm.ConfigureRequest{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Configure: got %v, want context.Canceled", err)
	}
	if _, err := p.Maintain(ctx, &mpm.MaintainRequest{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Maintain: got %v, want context.Canceled", err)
	}
}
