package config

import "testing"

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Size
		out  string
	}{
		{"0", 0, "0"}, {"512", 512, "512"}, {"64K", 64 * KiB, "64K"}, {"64k", 64 * KiB, "64K"}, {"100M", 100 * MiB, "100M"},
		{"100MB", 100 * MiB, "100M"}, {"1G", GiB, "1G"}, {"1536K", 1536 * KiB, "1536K"}, {"2048M", 2 * GiB, "2G"}, {" 3 M ", 3 * MiB, "3M"},
	} {
		got, err := ParseSize(tt.in)
		if err != nil || got != tt.want || got.String() != tt.out {
			t.Errorf("ParseSize(%q) = %v (%s), %v; want %v (%s)", tt.in, int64(got), got, err, int64(tt.want), tt.out)
		}
	}
	for _, bad := range []string{"", "M", "-1", "1.5M", "10T", "1e3", "99999999999G"} {
		if got, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) = %v, want an error", bad, got)
		}
	}
}
