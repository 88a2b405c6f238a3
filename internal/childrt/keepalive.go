package childrt

import (
	"net"
	"reflect"
	"unsafe"
)

// noKeepAliveProbes makes ln's accepted connections go without TCP
// keep-alive probes, as nginx's and Apache's do (nginx's so_keepalive and
// Apache's are off by default): every connection of phased's is bounded by
// the idle, header and write timeouts, which notice a vanished peer long
// before a 15 s probe would matter, and the probes cost four setsockopt
// calls on every accepted connection (SO_KEEPALIVE, TCP_KEEPIDLE,
// TCP_KEEPINTVL, TCP_KEEPCNT), a quarter of what accepting, answering and
// closing a `Connection: close` request costs in system calls.
//
// A listener made with net.ListenConfig{KeepAlive: -1} does that; an
// inherited socket can only become a listener through net.FileListener,
// which leaves the ListenConfig zero (probes on). So the ListenConfig's
// KeepAlive is set through reflection, by field name and type: on a Go
// whose TCPListener has no such field, nothing changes and it reports
// false (TestNoKeepAliveProbes fails then, so the change is seen).
func noKeepAliveProbes(ln net.Listener) bool {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return false
	}
	f, ok := reflect.TypeOf(*tl).FieldByName("lc")
	if !ok || f.Type != reflect.TypeOf(net.ListenConfig{}) {
		return false
	}
	lc := reflect.NewAt(f.Type, unsafe.Add(unsafe.Pointer(tl), f.Offset)).Interface().(*net.ListenConfig)
	lc.KeepAlive = -1
	return true
}
