package accesslog

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLoggerDuration: a Request's Duration is its %D; without one, the
// Logger measures from Received to the call, as Apache measures %D when it
// logs. Formats without a duration ignore both.
func TestLoggerDuration(t *testing.T) {
	logOne := func(f Format, r Request) string {
		var out bytes.Buffer
		w := NewWriter(&out, WriterOptions{FlushInterval: -1})
		NewLogger(w, f).Log(&r)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	r := Request{RemoteAddr: "127.0.0.1:1", Received: apacheTime, Method: "GET", URI: "/", Proto: "HTTP/1.1", Status: 200, Bytes: 6,
		Duration: 5*time.Millisecond + 999*time.Nanosecond}
	if got, want := logOne(FormatCommonDuration, r), `127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 6 5000`+"\n"; got != want {
		t.Errorf("common_duration:\n got  %s want %s", got, want)
	}
	if got, want := logOne(FormatCombinedDuration, r), `127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 6 "-" "-" 5000`+"\n"; got != want {
		t.Errorf("combined_duration:\n got  %s want %s", got, want)
	}
	if got := logOne(FormatCombined, r); strings.HasSuffix(got, " 5000\n") {
		t.Errorf("combined carries a duration: %s", got)
	}
	r.Duration, r.Received = 0, time.Now().Add(-3*time.Millisecond)
	line := logOne(FormatCommonDuration, r)
	us, err := strconv.Atoi(line[strings.LastIndexByte(line, ' ')+1 : len(line)-1])
	if err != nil || us < 3000 || us > 3_000_000 {
		t.Fatalf("measured %%D: %q", line)
	}
}
