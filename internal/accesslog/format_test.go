package accesslog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseFormat(t *testing.T) {
	tests := []struct {
		in   string
		want Format
	}{
		{"", FormatCombined},
		{"combined", FormatCombined},
		{"COMMON", FormatCommon},
		{"Json", FormatJSON},
		{"common_duration", FormatCommonDuration},
		{"Combined_Duration", FormatCombinedDuration},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFormat(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("ParseFormat(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			var u Format
			if err := u.UnmarshalText([]byte(tt.in)); err != nil || u != tt.want {
				t.Errorf("UnmarshalText(%q) = %v, %v", tt.in, u, err)
			}
			text, err := got.MarshalText()
			if err != nil || (tt.in != "" && string(text) != strings.ToLower(tt.in)) {
				t.Errorf("MarshalText = %q, %v", text, err)
			}
		})
	}
	_, err := ParseFormat("vhost")
	if want := `unknown access log format "vhost" (valid: combined, common, json, common_duration, combined_duration)`; err == nil || err.Error() != want {
		t.Errorf("ParseFormat(vhost) = %v, want %q", err, want)
	}
	for f, timed := range map[Format]bool{FormatCombined: false, FormatCommon: false, FormatJSON: true, FormatCommonDuration: true, FormatCombinedDuration: true} {
		if f.Timed() != timed {
			t.Errorf("%v.Timed() = %v", f, !timed)
		}
	}
	if _, err := Format(7).MarshalText(); err == nil {
		t.Error("MarshalText of an invalid Format succeeded")
	}
	var zero Format
	if zero != FormatCombined {
		t.Error("the zero Format is not combined")
	}
}

func TestAppendEscaped(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain /index.html?a=1&b=2", "plain /index.html?a=1&b=2"},
		{`say "hi"`, `say \"hi\"`},
		{`C:\dir`, `C:\\dir`},
		{"a\nb\rc\td\be\vf", `a\nb\rc\td\be\vf`},
		{"\x00\x1b[31m\x7f", `\x00\x1b[31m\x7f`},
		{"café", `caf\xc3\xa9`},
		{"", ""},
	}
	for _, tt := range tests {
		if got := string(appendEscaped(nil, tt.in)); got != tt.want {
			t.Errorf("appendEscaped(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// unescapeApache reverses appendEscaped.
func unescapeApache(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) {
			return "", fmt.Errorf("trailing backslash")
		}
		i++
		switch s[i] {
		case '"', '\\':
			b.WriteByte(s[i])
		case 'b':
			b.WriteByte('\b')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		case 'x':
			if i+2 >= len(s) {
				return "", fmt.Errorf("short \\x")
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", err
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			return "", fmt.Errorf("unknown escape \\%c", s[i])
		}
	}
	return b.String(), nil
}

func FuzzAppendEscaped(f *testing.F) {
	for _, s := range []string{"", "GET / HTTP/1.1", `"\`, "\x00\xff\n", "é\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := string(appendEscaped(nil, s))
		for i := 0; i < len(out); i++ {
			if c := out[i]; c < 0x20 || c >= 0x7f {
				t.Fatalf("escaped %q holds byte %#x", s, c)
			}
			if out[i] == '"' && (i == 0 || out[i-1] != '\\') {
				t.Fatalf("escaped %q holds a bare quote: %q", s, out)
			}
		}
		back, err := unescapeApache(out)
		if err != nil || back != s {
			t.Fatalf("unescape(%q) = %q, %v; want %q", out, back, err, s)
		}
	})
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "Mozilla/5.0", `"\`, "\x00\xff\n", "é\u2028\u2029\ufffd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("appendJSONString(%q) = %s: %v", s, out, err)
		}
		// Each invalid byte becomes one U+FFFD, as encoding/json does.
		var want strings.Builder
		for i := 0; i < len(s); {
			r, size := utf8.DecodeRuneInString(s[i:])
			want.WriteRune(r)
			i += size
		}
		if got != want.String() {
			t.Fatalf("appendJSONString(%q) decodes to %q, want %q", s, got, want.String())
		}
		std, _ := json.Marshal(s)
		if !json.Valid(out) || (!strings.ContainsAny(s, "<>&") && string(out) != string(std)) {
			t.Fatalf("appendJSONString(%q) = %s, encoding/json gives %s", s, out, std)
		}
	})
}

func TestTimeFormats(t *testing.T) {
	tests := []struct {
		t         time.Time
		clf, json string
	}{
		{
			time.Date(2000, time.October, 10, 13, 55, 36, 123456789, time.FixedZone("", -7*3600)),
			"[10/Oct/2000:13:55:36 -0700]", "2000-10-10T13:55:36.123456-07:00",
		},
		{
			time.Date(2026, time.January, 2, 3, 4, 5, 6000, time.UTC),
			"[02/Jan/2026:03:04:05 +0000]", "2026-01-02T03:04:05.000006Z",
		},
		{
			time.Date(1999, time.December, 31, 23, 59, 59, 0, time.FixedZone("", 5*3600+30*60)),
			"[31/Dec/1999:23:59:59 +0530]", "1999-12-31T23:59:59.000000+05:30",
		},
	}
	for _, tt := range tests {
		if got := string(appendCLFTime(nil, tt.t)); got != tt.clf || got != tt.t.Format("[02/Jan/2006:15:04:05 -0700]") {
			t.Errorf("appendCLFTime(%v) = %q, want %q", tt.t, got, tt.clf)
		}
		if got := string(appendRFC3339Micro(nil, tt.t)); got != tt.json || got != tt.t.Format("2006-01-02T15:04:05.000000Z07:00") {
			t.Errorf("appendRFC3339Micro(%v) = %q, want %q", tt.t, got, tt.json)
		}
	}
}

func TestRemoteHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"127.0.0.1:54321", "127.0.0.1"},
		{"[::1]:8080", "::1"},
		{"[fe80::1%eth0]:80", "fe80::1%eth0"},
		{"example.com:80", "example.com"},
		{"::1", "::1"},
		{"@", "@"},
		{"", "-"},
	}
	for _, tt := range tests {
		if got := remoteHost(tt.in); got != tt.want {
			t.Errorf("remoteHost(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestAppendEscapedEveryByte checks the eight-bytes-at-a-time scan against
// the byte-at-a-time rule, for every byte value at every position of a word.
func TestAppendEscapedEveryByte(t *testing.T) {
	slow := func(s string) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
				b.WriteByte(c)
				continue
			}
			b.Write(appendEscaped(nil, string([]byte{c})))
		}
		return b.String()
	}
	base := []byte("abcdefghijklmnopqrstuvwxyz")
	for c := range 256 {
		for pos := range 20 {
			s := bytes.Clone(base)
			s[pos] = byte(c)
			if got, want := string(appendEscaped(nil, string(s))), slow(string(s)); got != want {
				t.Fatalf("byte %#x at %d: got %q, want %q", c, pos, got, want)
			}
		}
	}
}

func TestTimeCache(t *testing.T) {
	var tc timeCache
	t0 := time.Date(2026, time.March, 29, 0, 59, 59, 900, time.UTC)
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip(err)
	}
	for _, tm := range []time.Time{t0, t0.Add(time.Millisecond), t0.In(paris), t0.Add(time.Second), t0.Add(time.Second).In(paris), t0} {
		if got, want := string(tc.appendCLF(nil, tm)), string(appendCLFTime(nil, tm)); got != want {
			t.Errorf("cached %v = %s, want %s", tm, got, want)
		}
	}
}
