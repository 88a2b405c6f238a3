// Package pluginrpc is the glue the plugin packages (sdk/mpm, sdk/hook and
// phased's plugin host, plugins/host) share: the handshake, the protocol versions, the
// plugin process's logger, and the mapping of gRPC failures to Go errors.
package pluginrpc

import (
	"context"
	"errors"
	"fmt"
	"slices"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The plugin protocol versions this SDK speaks.
const (
	// ProtocolV1 is the MPM service and the Hook service without ChildEvent.
	ProtocolV1 = 1
	// ProtocolV2 adds the Hook service's ChildEvent.
	ProtocolV2 = 2
	// ProtocolV3 adds the hook entry's settings to the Hook service's
	// Describe and RunPhase, and the plugins' names for themselves.
	ProtocolV3 = 3
	// ProtocolLatest is the newest version.
	ProtocolLatest = ProtocolV3
)

// Versions are the protocol versions this SDK speaks, oldest first.
func Versions() []int { return []int{ProtocolV1, ProtocolV2, ProtocolV3} }

// The plugin kinds, as go-plugin dispenses them.
const (
	KindMPM  = "mpm"
	KindHook = "hook"
)

// Handshake is the handshake every phased plugin and host share. It is a
// function, not a variable, so nothing can change it under another caller.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		// ProtocolVersion is go-plugin's legacy single version; phased
		// negotiates with VersionedPlugins, whose oldest version is 1.
		ProtocolVersion:  ProtocolV1,
		MagicCookieKey:   "PHASED_PLUGIN",
		MagicCookieValue: "a8c3f1d2-phased-plugin-5e0b7c94",
	}
}

// ServeConfig is what the public Serve functions' options set.
type ServeConfig struct {
	// Versions are the protocol versions to serve; nil serves Versions().
	Versions []int
}

// Serve serves one plugin of kind under the configured versions: set(v)
// returns the plugin value for version v. It creates the process logger
// before go-plugin swaps os.Stderr and hands it to go-plugin too. It returns
// only when the host is done with the plugin (go-plugin then exits the
// process), or on a misconfiguration, which it reports on stderr.
func Serve(kind string, set func(version int) plugin.Plugin, cfg ServeConfig) {
	logger := hclogLogger()
	versions := cfg.Versions
	if versions == nil {
		versions = Versions()
	}
	vp := make(map[int]plugin.PluginSet, len(versions))
	for _, v := range versions {
		if !slices.Contains(Versions(), v) {
			logger.Error("plugin misconfigured: unknown protocol version", "version", v, "known", Versions())
			return
		}
		vp[v] = plugin.PluginSet{kind: set(v)}
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake(),
		VersionedPlugins: vp,
		GRPCServer:       plugin.DefaultGRPCServer,
		Logger:           logger,
	})
}

// ErrorFromStatus turns the error of a gRPC call into the error the host
// sees, prefixed with the method name. Errors from the plugin's own code
// travel in the responses; a gRPC status means the call itself failed: the
// plugin crashed or exited (Unavailable), the context ended (the error then
// matches context.Canceled or context.DeadlineExceeded), or the plugin does
// not implement the method (errors.ErrUnsupported). The status stays
// reachable with status.FromError / status.Code.
func ErrorFromStatus(method string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", method, err)
	}
	return &rpcError{method: method, st: st}
}

type rpcError struct {
	method string
	st     *status.Status
}

func (e *rpcError) Error() string {
	return fmt.Sprintf("%s: plugin rpc: %s: %s", e.method, e.st.Code(), e.st.Message())
}

// GRPCStatus lets status.FromError and status.Code see the status.
func (e *rpcError) GRPCStatus() *status.Status { return e.st }

// Unwrap maps the status code to a standard error where there is one.
func (e *rpcError) Unwrap() error {
	switch e.st.Code() {
	case codes.Unimplemented:
		return errors.ErrUnsupported
	case codes.Canceled:
		return context.Canceled
	case codes.DeadlineExceeded:
		return context.DeadlineExceeded
	}
	return nil
}

// Unimplemented is the status a server returns for a capability the
// plugin's implementation lacks.
func Unimplemented(format string, args ...any) error {
	return status.Errorf(codes.Unimplemented, format, args...)
}

// InvalidArgument is the status a server returns for a request it cannot
// decode.
func InvalidArgument(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// ContextStatus is the status a server returns, instead of a response
// carrying the message, when the plugin's code gave up because the call's
// context ended (the host's deadline travels with the call, and the
// plugin's copy of it may fire before the host's own): the host then sees
// an error matching context.DeadlineExceeded or context.Canceled whichever
// side noticed first. It is nil for any other error.
func ContextStatus(ctx context.Context, err error) error {
	cerr := ctx.Err()
	if err == nil || cerr == nil || !errors.Is(err, cerr) {
		return nil
	}
	return status.FromContextError(err).Err()
}

// ErrMessage is err's message, or "" for nil: the form in which a plugin's
// own errors cross the wire.
func ErrMessage(err error) string {
	if err == nil {
		return ""
	}
	if msg := err.Error(); msg != "" {
		return msg
	}
	return "error with an empty message"
}

// RemoteError is an error the plugin's code returned, carried back as its
// message. If the caller's context had ended by the time the answer came
// back, the error also matches that context's error (the plugin most likely
// gave up because of it).
type RemoteError struct {
	Msg string
	ctx error
}

func (e *RemoteError) Error() string { return e.Msg }

// Unwrap returns the caller's context error, if any.
func (e *RemoteError) Unwrap() error { return e.ctx }

// FromMessage is the inverse of ErrMessage: nil for "", and otherwise a
// RemoteError with ctx's error, if ctx has ended.
func FromMessage(ctx context.Context, msg string) error {
	if msg == "" {
		return nil
	}
	return &RemoteError{Msg: msg, ctx: ctx.Err()}
}
