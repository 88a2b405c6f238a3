// Package mpm holds the end-to-end tests of phased's process models
// (prefork, worker, event): start_servers, maintenance growing and
// shrinking the children, max_request_workers, recycling by connections and
// by memory, the accept mutex, a switch of model on a graceful restart,
// children running as another user, and crashed children replaced with a
// back-off. The tests run the real binary through the harness in
// internal/e2e and skip under go test -short.
package mpm
