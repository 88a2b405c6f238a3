package mpm

import (
	"context"
	"errors"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/phasedhq/phased/internal/pluginrpc"
	pb "github.com/phasedhq/phased/sdk/internal/proto/phased/plugin/v1"
	"github.com/phasedhq/phased/sdk/internal/value"
)

// Plugin is the go-plugin plugin of kind "mpm". A plugin process serves it
// through Serve; a host puts it in its plugin sets (plugins/host's
// HostPluginSets does) and dispenses an MPM that calls the plugin over gRPC.
// It speaks gRPC only.
type Plugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is the MPM to serve; a host leaves it nil.
	Impl MPM
}

var _ plugin.GRPCPlugin = (*Plugin)(nil)

// GRPCServer registers Impl's gRPC service on s.
func (p *Plugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("mpm: Plugin.Impl is nil")
	}
	pb.RegisterMPMServer(s, &server{impl: p.Impl})
	return nil
}

// GRPCClient returns an MPM that calls the plugin on conn. Errors the
// plugin's MPM returned come back with their message, a *SettingError from
// Configure as a *SettingError (errors.As finds it); a failed call (the
// plugin exited: gRPC status Unavailable; the context ended) comes back as
// an error that status.Code reads and that matches context.Canceled or
// context.DeadlineExceeded when the context ended.
func (p *Plugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &client{rpc: pb.NewMPMClient(conn)}, nil
}

// server adapts an MPM to the generated gRPC server interface.
type server struct {
	pb.UnimplementedMPMServer
	impl MPM
}

func (s *server) Configure(ctx context.Context, in *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	settings, err := value.MapFromPB(in.GetSettings())
	if err != nil {
		return nil, pluginrpc.InvalidArgument("configure: %v", err)
	}
	resp, err := s.impl.Configure(ctx, &ConfigureRequest{Settings: settings})
	if st := pluginrpc.ContextStatus(ctx, err); st != nil {
		return nil, st
	}
	if err != nil {
		out := &pb.ConfigureResponse{Error: pluginrpc.ErrMessage(err)}
		if se, ok := errors.AsType[*SettingError](err); ok && se != nil {
			out.SettingError = &pb.SettingError{Key: se.Key, Msg: se.Msg}
		}
		return out, nil
	}
	if resp == nil {
		return &pb.ConfigureResponse{Error: "mpm: Configure returned a nil response and no error"}, nil
	}
	return configureResponseToPB(resp), nil
}

func (s *server) Maintain(ctx context.Context, in *pb.MaintainRequest) (*pb.MaintainResponse, error) {
	resp, err := s.impl.Maintain(ctx, maintainRequestFromPB(in))
	if st := pluginrpc.ContextStatus(ctx, err); st != nil {
		return nil, st
	}
	if err != nil {
		return &pb.MaintainResponse{Error: pluginrpc.ErrMessage(err)}, nil
	}
	if resp == nil {
		return &pb.MaintainResponse{Error: "mpm: Maintain returned a nil response and no error"}, nil
	}
	return maintainResponseToPB(resp), nil
}

// client is the host's MPM: each call is one gRPC call to the plugin.
type client struct {
	rpc pb.MPMClient
}

var _ MPM = (*client)(nil)

func (c *client) Configure(ctx context.Context, req *ConfigureRequest) (*ConfigureResponse, error) {
	in, err := configureRequestToPB(req)
	if err != nil {
		return nil, err
	}
	out, err := c.rpc.Configure(ctx, in)
	if err != nil {
		return nil, pluginrpc.ErrorFromStatus("mpm configure", err)
	}
	if out.GetError() != "" {
		return nil, configureError(ctx, out)
	}
	return configureResponseFromPB(out), nil
}

func (c *client) Maintain(ctx context.Context, req *MaintainRequest) (*MaintainResponse, error) {
	out, err := c.rpc.Maintain(ctx, maintainRequestToPB(req))
	if err != nil {
		return nil, pluginrpc.ErrorFromStatus("mpm maintain", err)
	}
	if out.GetError() != "" {
		return nil, pluginrpc.FromMessage(ctx, out.GetError())
	}
	return maintainResponseFromPB(out), nil
}

// configureError rebuilds the error a plugin's Configure returned: its
// *SettingError, wrapped in the original message when the plugin wrapped
// it.
func configureError(ctx context.Context, out *pb.ConfigureResponse) error {
	pse := out.GetSettingError()
	if pse == nil {
		return pluginrpc.FromMessage(ctx, out.GetError())
	}
	se := &SettingError{Key: pse.GetKey(), Msg: pse.GetMsg()}
	if se.Error() == out.GetError() {
		return se
	}
	return &wrappedSettingError{msg: out.GetError(), se: se}
}

type wrappedSettingError struct {
	msg string
	se  *SettingError
}

func (e *wrappedSettingError) Error() string { return e.msg }
func (e *wrappedSettingError) Unwrap() error { return e.se }
