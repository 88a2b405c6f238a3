package pluginrpc

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestContextStatus: a plugin that gave up because its copy of the host's
// deadline fired answers with a status the host maps back to the context
// error, so errors.Is works whichever side's deadline fired first (the
// race that once failed TestMPMMaintainDeadline in CI).
func TestContextStatus(t *testing.T) {
	expired, cancel := context.WithTimeout(t.Context(), time.Nanosecond)
	defer cancel()
	<-expired.Done()
	canceled, cancel2 := context.WithCancel(t.Context())
	cancel2()

	cases := []struct {
		name string
		ctx  context.Context
		err  error
		want codes.Code // codes.OK: no status, the message travels
	}{
		{"deadline", expired, expired.Err(), codes.DeadlineExceeded},
		{"wrapped deadline", expired, fmt.Errorf("maintain: %w", expired.Err()), codes.DeadlineExceeded},
		{"canceled", canceled, canceled.Err(), codes.Canceled},
		{"own error after the deadline", expired, errors.New("scoreboard is inconsistent"), codes.OK},
		{"context error while the call is live", t.Context(), context.DeadlineExceeded, codes.OK},
		{"no error", expired, nil, codes.OK},
	}
	for _, c := range cases {
		st := ContextStatus(c.ctx, c.err)
		if c.want == codes.OK {
			if st != nil {
				t.Errorf("%s: ContextStatus = %v, want nil", c.name, st)
			}
			continue
		}
		if status.Code(st) != c.want {
			t.Errorf("%s: ContextStatus = %v, want code %v", c.name, st, c.want)
			continue
		}
		host := ErrorFromStatus("Maintain", st)
		if !errors.Is(host, c.ctx.Err()) {
			t.Errorf("%s: host error %v does not match %v", c.name, host, c.ctx.Err())
		}
	}
}
