// Package clientip decides who a request's client is when proxies stand in
// between: the networks a child believes (Nets), and the address a trusted
// proxy's header names (Resolver), as nginx's set_real_ip_from and
// real_ip_header (with real_ip_recursive on) and Apache's mod_remoteip do.
//
// A connection's peer is the client unless it is a trusted proxy. A
// trusted proxy's header (X-Forwarded-For, Forwarded or X-Real-IP, one of
// them, configured) lists the addresses the request came through; they are
// read from the right, each proxy having appended the address it got the
// request from, and the first one that is not itself trusted is the client.
// An entry that is not an address (Forwarded's "unknown" or an obfuscated
// name, garbage) ends the walk: the last address reached stands. So a
// client can put anything in the header; only what trusted proxies added
// is believed.
package clientip

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// Nets is a list of networks.
type Nets []netip.Prefix

// ParseNets reads networks in CIDR form ("10.0.0.0/8", "::1/128"); the
// error names the first that is not one.
func ParseNets(cidrs []string) (Nets, error) {
	out := make(Nets, 0, len(cidrs))
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("%q is not a network in CIDR form (such as 10.0.0.0/8 or ::1/128)", c)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// MustParseNets is ParseNets for lists known to be good; it panics on a bad
// one.
func MustParseNets(cidrs ...string) Nets {
	n, err := ParseNets(cidrs)
	if err != nil {
		panic(err)
	}
	return n
}

// Contains reports whether a is in one of the networks. An IPv4 address
// written as IPv6 (::ffff:10.0.0.1) is the IPv4 address.
func (n Nets) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range n {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// The headers a Resolver reads, in their canonical forms.
const (
	XForwardedFor = "X-Forwarded-For"
	Forwarded     = "Forwarded"
	XRealIP       = "X-Real-Ip"
)

// Headers are the names real_ip_header takes, as users write them.
var Headers = []string{"X-Forwarded-For", "Forwarded", "X-Real-IP"}

// Resolver finds a request's client behind trusted proxies.
type Resolver struct {
	trusted Nets
	header  string // canonical
}

// NewResolver returns a Resolver believing header from the trusted
// networks, or nil when trusted is empty (nobody's header is believed).
// header is one of Headers, in any case.
func NewResolver(trusted Nets, header string) (*Resolver, error) {
	if len(trusted) == 0 {
		return nil, nil
	}
	var canon string
	switch strings.ToLower(header) {
	case "x-forwarded-for":
		canon = XForwardedFor
	case "forwarded":
		canon = Forwarded
	case "x-real-ip":
		canon = XRealIP
	default:
		return nil, fmt.Errorf("%q is not one of %s", header, strings.Join(Headers, ", "))
	}
	return &Resolver{trusted: trusted, header: canon}, nil
}

// Header returns the header the Resolver reads, canonical
// (net/http.CanonicalHeaderKey's form).
func (r *Resolver) Header() string { return r.header }

// Trusts reports whether a is a trusted proxy.
func (r *Resolver) Trusts(a netip.Addr) bool { return r != nil && r.trusted.Contains(a) }

// Client returns the client of a request that came from peer with values
// as its header's values (all the header's lines, in order). When peer is
// not trusted, or the header says nothing usable, it is peer.
func (r *Resolver) Client(peer netip.Addr, values []string) netip.Addr {
	if !r.Trusts(peer) {
		return peer
	}
	cur := peer
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for v != "" {
			var entry string
			entry, v = lastEntry(v, r.header == Forwarded)
			if entry == "" && r.header != Forwarded {
				continue // "a, , b": an empty member, as nginx skips it
			}
			a, ok := r.parse(entry)
			if !ok {
				return cur
			}
			cur = a
			if !r.trusted.Contains(a) {
				return cur
			}
		}
	}
	return cur
}

// lastEntry splits off the last comma-separated member of v (outside
// quotes, for Forwarded), trimmed, and returns it and what is left before
// it.
func lastEntry(v string, quoted bool) (entry, rest string) {
	inQuote := false
	for i := len(v) - 1; i >= 0; i-- {
		switch v[i] {
		case '"':
			if quoted {
				inQuote = !inQuote
			}
		case ',':
			if !inQuote {
				return strings.TrimSpace(v[i+1:]), v[:i]
			}
		}
	}
	return strings.TrimSpace(v), ""
}

// parse reads one member of the header: an address, or for Forwarded an
// element whose for= parameter is one.
func (r *Resolver) parse(entry string) (netip.Addr, bool) {
	if r.header == Forwarded {
		found := false
		for pair := range strings.SplitSeq(entry, ";") {
			k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "for") {
				entry, found = strings.Trim(strings.TrimSpace(val), `"`), true
				break
			}
		}
		if !found {
			return netip.Addr{}, false
		}
	}
	return ParseHost(entry)
}

// ParseHost reads an address written as a proxy writes it: 192.0.2.1,
// 192.0.2.1:443, 2001:db8::1, [2001:db8::1] or [2001:db8::1]:443.
func ParseHost(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), a.Zone() == ""
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), ap.Addr().Zone() == ""
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() {
			return a.Unmap(), a.Zone() == ""
		}
	}
	return netip.Addr{}, false
}

// FromRemoteAddr reads http.Request.RemoteAddr's "host:port" (or a bare
// host); the zero Addr when it is neither.
func FromRemoteAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := ParseHost(s)
	return a
}

type trustedKey struct{}

// WithTrustedProxy marks a request's context as one whose peer is a
// trusted proxy, so that what that proxy says about the original request
// (its scheme and host, in X-Forwarded-Proto and X-Forwarded-Host) may be
// passed on.
func WithTrustedProxy(ctx context.Context) context.Context {
	return context.WithValue(ctx, trustedKey{}, true)
}

// FromTrustedProxy reports whether ctx was marked by WithTrustedProxy.
func FromTrustedProxy(ctx context.Context) bool {
	v, _ := ctx.Value(trustedKey{}).(bool)
	return v
}
