package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// TestLogFormatLeavesOutAccessLines: a failure's dump of a log keeps every
// error-log line and only the first and last access-log lines, while
// String keeps everything for the tests that search it.
func TestLogFormatLeavesOutAccessLines(t *testing.T) {
	l := newLog()
	l.add(`{"level":"INFO","msg":"serving"}`)
	for i := 0; i < 100; i++ {
		l.add(fmt.Sprintf(`127.0.0.1 - - [06/Dec/2026:06:31:13 +0000] "GET /%d HTTP/1.1" 200 54 "-" "-"`, i))
	}
	l.add(`{"level":"ERROR","msg":"generation failed"}`)
	dump := fmt.Sprintf("%s", l)
	for _, want := range []string{`"msg":"serving"`, `"GET /0 `, `"GET /4 `, "[... 90 access-log lines left out ...]", `"GET /95 `, `"GET /99 `, `"msg":"generation failed"`} {
		if !strings.Contains(dump, want) {
			t.Errorf("the dump lacks %q:\n%s", want, dump)
		}
	}
	if strings.Contains(dump, `"GET /5 `) || strings.Contains(dump, `"GET /94 `) {
		t.Errorf("the dump keeps middle access lines:\n%s", dump)
	}
	if n := strings.Count(l.String(), "\n") + 1; n != 102 {
		t.Errorf("String has %d lines, want all 102", n)
	}
}
