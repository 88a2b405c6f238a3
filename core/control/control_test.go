package control

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "phased.sock")
	s, err := Listen(path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(func(ctx context.Context, req Request) Response {
		if req.Cmd == "fail" {
			return Response{Error: "new pass failed"}
		}
		return Response{OK: true, Message: "did " + req.Cmd}
	})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	resp, err := Call(path, Request{Cmd: "graceful"}, time.Second)
	if err != nil || !resp.OK || resp.Message != "did graceful" {
		t.Fatalf("Call = %+v, %v", resp, err)
	}
	resp, err = Call(path, Request{Cmd: "fail"}, time.Second)
	if err != nil || resp.OK || resp.Error != "new pass failed" {
		t.Fatalf("Call = %+v, %v", resp, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("socket file left behind")
	}
	if _, err := Call(path, Request{Cmd: "ping"}, time.Second); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Call to closed socket = %v, want ErrNotRunning", err)
	}
}

func TestListenReplacesLeftoverSocketButNotAFile(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	path := filepath.Join(dir, "phased.sock")
	s, err := Listen(path, log)
	if err != nil {
		t.Fatal(err)
	}
	s.ln.SetUnlinkOnClose(false)
	s.Close()
	s, err = Listen(path, log)
	if err != nil {
		t.Fatalf("leftover socket not replaced: %v", err)
	}
	s.Close()
	file := filepath.Join(dir, "regular")
	os.WriteFile(file, []byte("x"), 0o644)
	if _, err := Listen(file, log); err == nil {
		t.Fatal("replaced a regular file")
	}
}
