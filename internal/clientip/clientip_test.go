package clientip

import (
	"net/netip"
	"testing"
)

func TestResolver(t *testing.T) {
	trusted := MustParseNets("10.0.0.0/8", "2001:db8:1::/48", "127.0.0.3/32")
	for _, tt := range []struct {
		name, header, peer string
		values             []string
		want               string
	}{
		{"untrusted peer, forged header ignored", "X-Forwarded-For", "192.0.2.1", []string{"6.6.6.6"}, "192.0.2.1"},
		{"trusted peer, no header", "X-Forwarded-For", "10.0.0.1", nil, "10.0.0.1"},
		{"trusted peer names the client", "X-Forwarded-For", "10.0.0.1", []string{"192.0.2.7"}, "192.0.2.7"},
		{"what the client forged is left of the real one", "X-Forwarded-For", "10.0.0.1", []string{"6.6.6.6, 192.0.2.7"}, "192.0.2.7"},
		{"through two trusted proxies", "X-Forwarded-For", "10.0.0.1", []string{"6.6.6.6, 192.0.2.7, 10.1.1.1"}, "192.0.2.7"},
		{"several header lines, in order", "X-Forwarded-For", "10.0.0.1", []string{"6.6.6.6", "192.0.2.7, 10.1.1.1"}, "192.0.2.7"},
		{"every hop trusted: the leftmost", "X-Forwarded-For", "10.0.0.1", []string{"10.2.2.2, 10.1.1.1"}, "10.2.2.2"},
		{"garbage stops the walk at the last address", "X-Forwarded-For", "10.0.0.1", []string{"192.0.2.9, nonsense, 10.1.1.1"}, "10.1.1.1"},
		{"empty members skipped", "X-Forwarded-For", "10.0.0.1", []string{"192.0.2.7, , "}, "192.0.2.7"},
		{"ports and brackets", "X-Forwarded-For", "10.0.0.1", []string{"[2001:db8::5]:443"}, "2001:db8::5"},
		{"IPv4 mapped peer is IPv4", "X-Forwarded-For", "::ffff:10.0.0.1", []string{"192.0.2.7"}, "192.0.2.7"},
		{"IPv6 trusted peer", "X-Forwarded-For", "2001:db8:1::9", []string{"192.0.2.7"}, "192.0.2.7"},
		{"a zone is not an address", "X-Forwarded-For", "10.0.0.1", []string{"fe80::1%eth0"}, "10.0.0.1"},
		{"Forwarded", "Forwarded", "10.0.0.1", []string{`for=6.6.6.6, for="[2001:db8::17]:4711";proto=https, for=10.1.1.1;by=10.0.0.1`}, "2001:db8::17"},
		{"Forwarded, comma in quotes", "forwarded", "10.0.0.1", []string{`for="192.0.2.60";x="a,b"`}, "192.0.2.60"},
		{"Forwarded unknown stops", "Forwarded", "10.0.0.1", []string{"for=192.0.2.60, for=unknown"}, "10.0.0.1"},
		{"Forwarded without for stops", "Forwarded", "10.0.0.1", []string{"proto=https"}, "10.0.0.1"},
		{"X-Real-IP", "X-Real-IP", "127.0.0.3", []string{"127.0.0.2"}, "127.0.0.2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewResolver(trusted, tt.header)
			if err != nil {
				t.Fatal(err)
			}
			got := r.Client(netip.MustParseAddr(tt.peer), tt.values)
			if got != netip.MustParseAddr(tt.want) {
				t.Errorf("client %v, want %s", got, tt.want)
			}
		})
	}
}

func TestResolverSetup(t *testing.T) {
	if r, err := NewResolver(nil, "X-Forwarded-For"); r != nil || err != nil {
		t.Errorf("no trusted networks: %v %v, want nil, nil", r, err)
	}
	if _, err := NewResolver(MustParseNets("10.0.0.0/8"), "X-Client"); err == nil {
		t.Error("an unknown header was taken")
	}
	var none *Resolver
	if none.Trusts(netip.MustParseAddr("10.0.0.1")) {
		t.Error("a nil Resolver trusts")
	}
	if _, err := ParseNets([]string{"10.0.0.0/8", "10.0.0.1"}); err == nil {
		t.Error("a bare address was taken as a network")
	}
	n := MustParseNets("10.0.0.1/8")
	if !n.Contains(netip.MustParseAddr("10.9.9.9")) || !n.Contains(netip.MustParseAddr("::ffff:10.1.2.3")) || n.Contains(netip.MustParseAddr("11.0.0.1")) {
		t.Error("Contains")
	}
}

func TestFromRemoteAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:80":       "192.0.2.1",
		"[2001:db8::1]:80":   "2001:db8::1",
		"[::ffff:1.2.3.4]:1": "1.2.3.4",
		"192.0.2.1":          "192.0.2.1",
		"pipe":               "invalid IP",
		"":                   "invalid IP",
	} {
		if got := FromRemoteAddr(in).String(); got != want {
			t.Errorf("FromRemoteAddr(%q) = %s, want %s", in, got, want)
		}
	}
}

// FuzzClient: no header makes the resolver panic, and what it returns is
// the peer or an address the header holds.
func FuzzClient(f *testing.F) {
	f.Add("192.0.2.7, 10.1.1.1", true)
	f.Add(`for="[2001:db8::17]:4711";proto=https, for=unknown`, false)
	f.Fuzz(func(t *testing.T, v string, xff bool) {
		h := "Forwarded"
		if xff {
			h = "X-Forwarded-For"
		}
		r, _ := NewResolver(MustParseNets("10.0.0.0/8"), h)
		peer := netip.MustParseAddr("10.0.0.1")
		if got := r.Client(peer, []string{v}); !got.IsValid() {
			t.Fatalf("invalid client from %q", v)
		}
	})
}
