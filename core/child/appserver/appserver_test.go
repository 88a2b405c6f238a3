package appserver

import (
	"bufio"
	"strings"
	"testing"
)

// TestSplitLines: lines as bufio.ScanLines reads them, and a line longer
// than maxLine in pieces of maxLine bytes, with nothing lost.
func TestSplitLines(t *testing.T) {
	long := strings.Repeat("x", 2*maxLine+5)
	sc := bufio.NewScanner(strings.NewReader("one\r\ntwo\n" + long + "\nlast"))
	sc.Buffer(make([]byte, 16), 2*maxLine)
	sc.Split(splitLines)
	var got []string
	for sc.Scan() {
		got = append(got, sc.Text())
	}
	if sc.Err() != nil {
		t.Fatal(sc.Err())
	}
	want := []string{"one", "two", long[:maxLine], long[maxLine : 2*maxLine], "xxxxx", "last"}
	if len(got) != len(want) {
		t.Fatalf("%d pieces, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("piece %d: %d bytes %.10q, want %d bytes %.10q", i, len(got[i]), got[i], len(want[i]), want[i])
		}
	}
}
