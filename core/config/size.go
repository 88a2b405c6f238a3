package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Size is a number of bytes, written as a plain number or with a unit as
// Apache and nginx take them: 512, 64K, 100M, 1G (powers of 1024, K/k,
// M/m, G/g, with an optional B).
type Size int64

// The units a Size is written with.
const (
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
)

// ParseSize reads s as a Size.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "b")
	mult := Size(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K', 'k':
			mult, t = KiB, t[:n-1]
		case 'M', 'm':
			mult, t = MiB, t[:n-1]
		case 'G', 'g':
			mult, t = GiB, t[:n-1]
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || n < 0 || Size(n) > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q (a number of bytes, or with a unit: 64K, 100M, 1G)", s)
	}
	return Size(n) * mult, nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return &valueError{err.Error()}
	}
	*s = v
	return nil
}

// MarshalText writes s with the largest unit that divides it: "100M".
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// String is MarshalText's text.
func (s Size) String() string {
	switch {
	case s != 0 && s%GiB == 0:
		return strconv.FormatInt(int64(s/GiB), 10) + "G"
	case s != 0 && s%MiB == 0:
		return strconv.FormatInt(int64(s/MiB), 10) + "M"
	case s != 0 && s%KiB == 0:
		return strconv.FormatInt(int64(s/KiB), 10) + "K"
	}
	return strconv.FormatInt(int64(s), 10)
}
