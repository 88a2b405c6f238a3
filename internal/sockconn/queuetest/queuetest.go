// Package queuetest checks a listener's QueueDepth for the tests of the
// packages whose listeners report it (sockconn, acceptmutex).
package queuetest

import (
	"errors"
	"net"
	"testing"
	"time"
)

// Listener is what reports its accept queue.
type Listener interface {
	QueueDepth() (depth, limit int, err error)
	Close() error
}

// Check dials addr twice, expects l to report 2 connections waiting (within
// 2 s) and a limit, closes l and expects net.ErrClosed from QueueDepth.
func Check(t *testing.T, l Listener, addr string) {
	t.Helper()
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		depth, limit, err := l.QueueDepth()
		if err == nil && depth == 2 && limit > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("QueueDepth = %d, %d, %v; want 2 waiting", depth, limit, err)
		}
	}
	l.Close()
	if _, _, err := l.QueueDepth(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("QueueDepth after Close = %v, want net.ErrClosed", err)
	}
}
