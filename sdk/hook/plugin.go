package hook

import (
	"context"
	"errors"
	"fmt"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/phasedhq/phased/internal/pluginrpc"
	pb "github.com/phasedhq/phased/sdk/internal/proto/phased/plugin/v1"
	"github.com/phasedhq/phased/sdk/internal/value"
)

// Plugin is the go-plugin plugin of kind "hook". A plugin process serves it
// through Serve; a host puts one per protocol version in its plugin sets
// (phased's plugin host, plugins/host.PluginSets, does) and dispenses a Client. It speaks gRPC
// only.
type Plugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is the hook to serve; a host leaves it nil.
	Impl Hook
	// Protocol is the plugin protocol version this value is served or
	// dispensed under: go-plugin picks the value from the version's plugin
	// set, so each set needs its own. Under 1 there are no child events,
	// under 1 and 2 no settings. Zero means the newest version (3).
	Protocol int
}

var _ plugin.GRPCPlugin = (*Plugin)(nil)

func (p *Plugin) protocol() int {
	if p.Protocol == 0 {
		return pluginrpc.ProtocolLatest
	}
	return p.Protocol
}

// GRPCServer registers Impl's gRPC service on s.
func (p *Plugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("hook: Plugin.Impl is nil")
	}
	pb.RegisterHookServer(s, &server{impl: p.Impl, protocol: p.protocol()})
	return nil
}

// GRPCClient returns a Client that calls the plugin on conn.
func (p *Plugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &client{rpc: pb.NewHookClient(conn), protocol: p.protocol()}, nil
}

// server adapts a Hook to the generated gRPC server interface.
type server struct {
	pb.UnimplementedHookServer
	impl     Hook
	protocol int
}

func (s *server) Describe(ctx context.Context, in *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	settings, err := settingsFromPB(in.GetSettings())
	if err != nil {
		return nil, pluginrpc.InvalidArgument("describe: %v", err)
	}
	resp, err := s.impl.Describe(ctx, &DescribeRequest{Protocol: s.protocol, Settings: settings})
	if err == nil && resp == nil {
		err = errors.New("hook: Describe returned a nil response and no error")
	}
	if err == nil {
		err = s.check(resp)
	}
	if st := pluginrpc.ContextStatus(ctx, err); st != nil {
		return nil, st
	}
	if err != nil {
		return &pb.DescribeResponse{Error: pluginrpc.ErrMessage(err), SettingError: settingErrorToPB(err)}, nil
	}
	out := &pb.DescribeResponse{ChildEvents: resp.ChildEvents, Name: resp.Name}
	for _, ph := range resp.Phases {
		out.Phases = append(out.Phases, string(ph))
	}
	return out, nil
}

// check proves that the plugin implements what it describes.
func (s *server) check(resp *DescribeResponse) error {
	var errs []error
	for _, ph := range resp.Phases {
		if !implements(s.impl, ph) {
			errs = append(errs, fmt.Errorf("hook: Describe lists phase %q, which %T does not implement", ph, s.impl))
		}
	}
	if _, ok := s.impl.(ChildWatcher); resp.ChildEvents && !ok {
		errs = append(errs, fmt.Errorf("hook: Describe asks for child events, but %T is no hook.ChildWatcher", s.impl))
	}
	return errors.Join(errs...)
}

// settingsFromPB decodes a hook entry's settings; none is nil.
func settingsFromPB(in map[string]*pb.Value) (map[string]any, error) {
	if len(in) == 0 {
		return nil, nil
	}
	return value.MapFromPB(in)
}

// settingsToPB encodes a hook entry's settings for the wire, under
// protocol 3; older protocols carry none.
func (c *client) settingsToPB(in map[string]any) (map[string]*pb.Value, error) {
	if len(in) == 0 || c.protocol < pluginrpc.ProtocolV3 {
		return nil, nil
	}
	out, key, err := value.MapToPB(in)
	if err != nil {
		return nil, &SettingError{Key: key, Msg: err.Error()}
	}
	return out, nil
}

// settingErrorToPB is err's SettingError, if it is or wraps one.
func settingErrorToPB(err error) *pb.SettingError {
	if se, ok := errors.AsType[*SettingError](err); ok && se != nil {
		return &pb.SettingError{Key: se.Key, Msg: se.Msg}
	}
	return nil
}

// settingErrorFromPB is the SettingError a response carries, or nil.
func settingErrorFromPB(se *pb.SettingError) error {
	if se == nil {
		return nil
	}
	return &SettingError{Key: se.GetKey(), Msg: se.GetMsg()}
}

func (s *server) RunPhase(ctx context.Context, in *pb.RunPhaseRequest) (*pb.RunPhaseResponse, error) {
	settings, err := settingsFromPB(in.GetSettings())
	if err != nil {
		return nil, pluginrpc.InvalidArgument("run phase: %v", err)
	}
	req := &PhaseRequest{
		Phase:      Phase(in.GetPhase()),
		Pass:       int(in.GetPass()),
		Generation: int(in.GetGeneration()),
		DryRun:     in.GetDryRun(),
		Slot:       -1,
		ConfigJSON: in.GetConfigJson(),
		Settings:   settings,
	}
	if in.Slot != nil {
		req.Slot = int(in.GetSlot())
	}
	switch req.Phase {
	case PhaseConfigure:
		h, ok := s.impl.(Configurer)
		if !ok {
			return nil, pluginrpc.Unimplemented("hook %T does not implement phase %s", s.impl, req.Phase)
		}
		var resp *ConfigureResponse
		resp, err = h.Configure(ctx, req)
		if err == nil && resp != nil && len(resp.Errors) > 0 {
			err = ConfigErrors(resp.Errors)
		}
	case PhaseOpenLogs:
		h, ok := s.impl.(LogOpener)
		if !ok {
			return nil, pluginrpc.Unimplemented("hook %T does not implement phase %s", s.impl, req.Phase)
		}
		_, err = h.OpenLogs(ctx, req)
	case PhasePostConfig:
		h, ok := s.impl.(PostConfigurer)
		if !ok {
			return nil, pluginrpc.Unimplemented("hook %T does not implement phase %s", s.impl, req.Phase)
		}
		_, err = h.PostConfig(ctx, req)
	case PhaseShutdown:
		h, ok := s.impl.(ShutdownHandler)
		if !ok {
			return nil, pluginrpc.Unimplemented("hook %T does not implement phase %s", s.impl, req.Phase)
		}
		_, err = h.Shutdown(ctx, req)
	default:
		return nil, pluginrpc.InvalidArgument("unknown phase %q", req.Phase)
	}
	if st := pluginrpc.ContextStatus(ctx, err); st != nil {
		return nil, st
	}
	return phaseResponse(err), nil
}

// phaseResponse encodes a phase's error: ConfigErrors as config_errors,
// anything else as its message.
func phaseResponse(err error) *pb.RunPhaseResponse {
	if err == nil {
		return &pb.RunPhaseResponse{}
	}
	out := &pb.RunPhaseResponse{Error: pluginrpc.ErrMessage(err), SettingError: settingErrorToPB(err)}
	if ces, ok := errors.AsType[ConfigErrors](err); ok {
		for _, ce := range ces {
			out.ConfigErrors = append(out.ConfigErrors, &pb.ConfigError{Key: ce.Key, Message: ce.Message})
		}
	}
	return out
}

func (s *server) ChildEvent(ctx context.Context, in *pb.ChildEventRequest) (*pb.ChildEventResponse, error) {
	if s.protocol < pluginrpc.ProtocolV2 {
		return nil, pluginrpc.Unimplemented("child events need plugin protocol 2; this plugin serves %d", s.protocol)
	}
	w, ok := s.impl.(ChildWatcher)
	if !ok {
		return nil, pluginrpc.Unimplemented("hook %T is no hook.ChildWatcher", s.impl)
	}
	req := &ChildEventRequest{
		PID:        int(in.GetPid()),
		Slot:       int(in.GetSlot()),
		Generation: int(in.GetGeneration()),
		Status:     in.GetStatus(),
	}
	var err error
	switch in.GetKind() {
	case pb.ChildEventRequest_KIND_SPAWNED:
		req.Kind = ChildSpawned
		err = w.ChildSpawned(ctx, req)
	case pb.ChildEventRequest_KIND_EXITED:
		req.Kind = ChildExited
		err = w.ChildExited(ctx, req)
	default:
		return nil, pluginrpc.InvalidArgument("unknown child event kind %v", in.GetKind())
	}
	if st := pluginrpc.ContextStatus(ctx, err); st != nil {
		return nil, st
	}
	return &pb.ChildEventResponse{Error: pluginrpc.ErrMessage(err)}, nil
}

// client is the host's Client: each call is one gRPC call to the plugin.
type client struct {
	rpc      pb.HookClient
	protocol int
}

var _ Client = (*client)(nil)

func (c *client) Describe(ctx context.Context, req *DescribeRequest) (*DescribeResponse, error) {
	in := &pb.DescribeRequest{}
	if req != nil {
		var err error
		if in.Settings, err = c.settingsToPB(req.Settings); err != nil {
			return nil, err
		}
	}
	out, err := c.rpc.Describe(ctx, in)
	if err != nil {
		return nil, pluginrpc.ErrorFromStatus("hook describe", err)
	}
	if err := settingErrorFromPB(out.GetSettingError()); err != nil {
		return nil, err
	}
	if out.GetError() != "" {
		return nil, pluginrpc.FromMessage(ctx, out.GetError())
	}
	resp := &DescribeResponse{ChildEvents: out.GetChildEvents() && c.protocol >= pluginrpc.ProtocolV2, Name: out.GetName()}
	for _, ph := range out.GetPhases() {
		resp.Phases = append(resp.Phases, Phase(ph))
	}
	return resp, nil
}

func (c *client) RunPhase(ctx context.Context, req *PhaseRequest) (*PhaseResponse, error) {
	settings, err := c.settingsToPB(req.Settings)
	if err != nil {
		return nil, err
	}
	in := &pb.RunPhaseRequest{
		Settings:   settings,
		Phase:      string(req.Phase),
		Pass:       int64(req.Pass),
		Generation: int64(req.Generation),
		DryRun:     req.DryRun,
		ConfigJson: req.ConfigJSON,
	}
	if req.Slot >= 0 {
		slot := int64(req.Slot)
		in.Slot = &slot
	}
	out, err := c.rpc.RunPhase(ctx, in)
	if err != nil {
		return nil, pluginrpc.ErrorFromStatus("hook "+string(req.Phase), err)
	}
	if err := settingErrorFromPB(out.GetSettingError()); err != nil {
		return nil, err
	}
	if ces := out.GetConfigErrors(); len(ces) > 0 {
		errs := make(ConfigErrors, len(ces))
		for i, ce := range ces {
			errs[i] = ConfigError{Key: ce.GetKey(), Message: ce.GetMessage()}
		}
		return nil, errs
	}
	if out.GetError() != "" {
		return nil, pluginrpc.FromMessage(ctx, out.GetError())
	}
	return &PhaseResponse{}, nil
}

func (c *client) ChildEvent(ctx context.Context, req *ChildEventRequest) error {
	if c.protocol < pluginrpc.ProtocolV2 {
		return fmt.Errorf("hook child event: plugin protocol %d has none (needs 2): %w", c.protocol, errors.ErrUnsupported)
	}
	in := &pb.ChildEventRequest{
		Pid:        int64(req.PID),
		Slot:       int64(req.Slot),
		Generation: int64(req.Generation),
		Status:     req.Status,
	}
	switch req.Kind {
	case ChildSpawned:
		in.Kind = pb.ChildEventRequest_KIND_SPAWNED
	case ChildExited:
		in.Kind = pb.ChildEventRequest_KIND_EXITED
	default:
		return fmt.Errorf("hook child event: unknown kind %q", req.Kind)
	}
	out, err := c.rpc.ChildEvent(ctx, in)
	if err != nil {
		return pluginrpc.ErrorFromStatus("hook child event", err)
	}
	return pluginrpc.FromMessage(ctx, out.GetError())
}
