package fastcgi

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestRecordEncoding(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 65535} {
		b := appendRecord(nil, typeStdin, requestID, bytes.Repeat([]byte{'x'}, n))
		if len(b)%8 != 0 {
			t.Fatalf("record of %d bytes takes %d bytes, not a multiple of 8", n, len(b))
		}
		h, err := parseHeader(b)
		if err != nil || h.typ != typeStdin || h.id != requestID || int(h.length) != n || len(b) != headerLen+n+int(h.padding) {
			t.Fatalf("header of %d bytes: %+v, %v", n, h, err)
		}
	}
	if _, err := parseHeader([]byte{2, 6, 0, 1, 0, 0, 0, 0}); !errors.Is(err, ErrProtocol) {
		t.Fatalf("version 2: %v", err)
	}
	// A stream longer than one record is cut at 65535 bytes.
	s := appendStream(nil, typeParams, requestID, bytes.Repeat([]byte{'p'}, 65535+10))
	h, _ := parseHeader(s)
	next := s[headerLen+int(h.length)+int(h.padding):]
	h2, _ := parseHeader(next)
	if h.length != 65535 || h2.length != 10 || len(next) != headerLen+16 {
		t.Fatalf("stream records of %d and %d bytes", h.length, h2.length)
	}
}

func TestPairs(t *testing.T) {
	long := strings.Repeat("v", 300)
	in := []Param{{"A", "1"}, {"", ""}, {strings.Repeat("N", 127), long}, {strings.Repeat("N", 128), "x"}}
	var b []byte
	for _, p := range in {
		b = appendPair(b, p)
	}
	// One-byte lengths below 128, four bytes with the high bit above.
	if b[0] != 1 || b[1] != 1 {
		t.Fatalf("short lengths % x", b[:2])
	}
	out, err := parsePairs(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d pairs back, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i] != in[i] {
			t.Fatalf("pair %d: %q", i, out[i].Name)
		}
	}
	for _, bad := range [][]byte{
		{5},                         // name length without a value length
		{5, 0, 'a'},                 // name shorter than said
		{0x80, 0, 0},                // four-byte length cut short
		{0xff, 0xff, 0xff, 0xff, 0}, // 2 GiB name in a few bytes
		{1, 0x80, 0, 0, 1, 'a'},     // value longer than the record
	} {
		if _, err := parsePairs(bad); !errors.Is(err, ErrProtocol) {
			t.Errorf("parsePairs(% x): %v", bad, err)
		}
	}
}
