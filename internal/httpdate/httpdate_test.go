package httpdate

import (
	"net/http"
	"testing"
	"time"
)

// The value and the line follow the clock's second, and are made once a
// second.
func TestValueAndLine(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 2, 14, 0, 0, time.UTC)
	if got, want := Value(t0), t0.Format(http.TimeFormat); got != want {
		t.Fatalf("Value = %q, want %q", got, want)
	}
	if got := string(Line(t0.Add(500 * time.Millisecond))); got != "Date: Mon, 07 Dec 2026 02:14:00 GMT\r\n" {
		t.Fatalf("Line = %q", got)
	}
	if Value(t0.Add(time.Second)) != "Mon, 07 Dec 2026 02:14:01 GMT" {
		t.Fatalf("the next second: %q", Value(t0.Add(time.Second)))
	}
	if n := testing.AllocsPerRun(100, func() { Line(t0.Add(time.Second)) }); n != 0 {
		t.Fatalf("%v allocations a call within the second, want 0", n)
	}
}
