// Package sdktest is an in-process host for plugin authors' tests. MPM and
// Hook serve an implementation through the same gRPC path a phased master
// uses (the plugin's gRPC server as go-plugin builds it, protobuf encoding,
// the host's client), over an in-memory connection inside the test
// process, and return what the master would dispense:
//
//	func TestPolicy(t *testing.T) {
//		m := sdktest.MPM(t, &myPolicy{})
//		resp, err := m.Configure(t.Context(), &mpm.ConfigureRequest{...})
//		...
//	}
//
// The connection and server are closed by t.Cleanup. What sdktest does not
// run is the process around it: the handshake, version negotiation and
// stderr logging, which a plugin gets from Serve.
package sdktest

import (
	"context"
	"net"
	"testing"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/phasedhq/phased/internal/pluginrpc"
	"github.com/phasedhq/phased/sdk/hook"
	"github.com/phasedhq/phased/sdk/mpm"
)

// MPM serves impl in-process and returns the host's MPM for it: every call
// crosses gRPC, so what impl returns is what a master would see.
func MPM(tb testing.TB, impl mpm.MPM) mpm.MPM {
	tb.Helper()
	return dispense[mpm.MPM](tb, pluginrpc.KindMPM, &mpm.Plugin{Impl: impl})
}

// Hook serves impl in-process under the newest plugin protocol (3) and
// returns the host's Client for it.
func Hook(tb testing.TB, impl hook.Hook) hook.Client {
	tb.Helper()
	return HookProtocol(tb, impl, pluginrpc.ProtocolLatest)
}

// HookProtocol is Hook under the given plugin protocol version, 1, 2 or 3;
// as with a master that negotiated it, under 1 there are no child events,
// and under 1 and 2 no settings.
func HookProtocol(tb testing.TB, impl hook.Hook, protocol int) hook.Client {
	tb.Helper()
	return dispense[hook.Client](tb, pluginrpc.KindHook, &hook.Plugin{Impl: impl, Protocol: protocol})
}

// dispense serves p on a gRPC server over an in-memory listener, as
// go-plugin's plugin process would on its socket, and returns what p's
// GRPCClient makes of a connection to it, as go-plugin's Dispense would.
func dispense[T any](tb testing.TB, kind string, p goplugin.GRPCPlugin) T {
	tb.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := goplugin.DefaultGRPCServer(nil)
	if err := p.GRPCServer(nil, srv); err != nil {
		tb.Fatalf("sdktest: serving %s: %v", kind, err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	conn, err := grpc.NewClient("passthrough:///sdktest",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	)
	if err != nil {
		srv.Stop()
		tb.Fatalf("sdktest: dialling %s: %v", kind, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(func() {
		cancel()
		_ = conn.Close()
		srv.Stop()
		<-served
	})
	raw, err := p.GRPCClient(ctx, nil, conn)
	if err != nil {
		tb.Fatalf("sdktest: dispensing %s: %v", kind, err)
	}
	v, ok := raw.(T)
	if !ok {
		tb.Fatalf("sdktest: %s plugin dispensed %T", kind, raw)
	}
	return v
}
