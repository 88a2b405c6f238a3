package policy

import (
	"math"
	"strconv"
	"testing"
)

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"100", 100, true},
		{"100B", 100, true},
		{"1k", 1 << 10, true},
		{"64KiB", 64 << 10, true},
		{"512M", 512 << 20, true},
		{"512mb", 512 << 20, true},
		{" 1G ", 1 << 30, true},
		{"2 GiB", 2 << 30, true},
		{"1T", 1 << 40, true},
		{"8388607T", 8388607 << 40, true},
		{"8388608T", 0, false},
		{"", 0, false},
		{"M", 0, false},
		{"-1M", 0, false},
		{"1.5G", 0, false},
		{"12x", 0, false},
		{"1P", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseBytes(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"512M", "1G", "100", "64KiB", "-3", "9999999999999T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseBytes(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseBytes(%q) = %d, negative", s, n)
		}
		// Plain digits read as themselves.
		if d, perr := strconv.ParseInt(s, 10, 64); perr == nil && d != n {
			t.Fatalf("ParseBytes(%q) = %d, want %d", s, n, d)
		}
	})
}

func TestToInt(t *testing.T) {
	tests := []struct {
		in   any
		want int
		ok   bool
	}{
		{7, 7, true}, {int8(-7), -7, true}, {int16(7), 7, true}, {int32(7), 7, true}, {int64(7), 7, true},
		{uint(7), 7, true}, {uint8(7), 7, true}, {uint16(7), 7, true}, {uint32(7), 7, true}, {uint64(7), 7, true},
		{uint64(math.MaxUint64), 0, false}, {float32(3), 3, true}, {3.0, 3, true}, {3.5, 0, false},
		{math.Inf(1), 0, false}, {math.NaN(), 0, false}, {1e300, 0, false},
		{" 42 ", 42, true}, {"4x", 0, false}, {nil, 0, false}, {true, 0, false},
	}
	for _, tt := range tests {
		got, err := toInt(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("toInt(%#v) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
