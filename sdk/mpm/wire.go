package mpm

import (
	"time"

	"github.com/phasedhq/phased/sdk/internal/value"

	pb "github.com/phasedhq/phased/sdk/internal/proto/phased/plugin/v1"
)

// This file converts between the hand-written types and the generated
// protocol messages. Go ints travel as int64; times as Unix nanoseconds,
// with 0 for the zero time.

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func configureRequestToPB(req *ConfigureRequest) (*pb.ConfigureRequest, error) {
	if req == nil {
		return &pb.ConfigureRequest{}, nil
	}
	settings, key, err := value.MapToPB(req.Settings)
	if err != nil {
		return nil, &SettingError{Key: key, Msg: err.Error()}
	}
	return &pb.ConfigureRequest{Settings: settings}, nil
}

// valueToPB and valueFromPB convert one configuration value (sdk/internal/value).
var (
	valueToPB   = value.ToPB
	valueFromPB = value.FromPB
)

func configureResponseToPB(r *ConfigureResponse) *pb.ConfigureResponse {
	return &pb.ConfigureResponse{
		Model:                        string(r.Model),
		ThreadsPerChild:              int64(r.ThreadsPerChild),
		ServerLimit:                  int64(r.ServerLimit),
		StartServers:                 int64(r.StartServers),
		MaxRequestWorkers:            int64(r.MaxRequestWorkers),
		MaxConnectionsPerChild:       int64(r.MaxConnectionsPerChild),
		MaxConnectionsPerChildJitter: int64(r.MaxConnectionsPerChildJitter),
		MaxMemoryPerChild:            r.MaxMemoryPerChild,
		AcceptMutex:                  r.AcceptMutex,
		Notes:                        r.Notes,
		Name:                         r.Name,
	}
}

func configureResponseFromPB(r *pb.ConfigureResponse) *ConfigureResponse {
	return &ConfigureResponse{
		Model:                        Model(r.GetModel()),
		ThreadsPerChild:              int(r.GetThreadsPerChild()),
		ServerLimit:                  int(r.GetServerLimit()),
		StartServers:                 int(r.GetStartServers()),
		MaxRequestWorkers:            int(r.GetMaxRequestWorkers()),
		MaxConnectionsPerChild:       int(r.GetMaxConnectionsPerChild()),
		MaxConnectionsPerChildJitter: int(r.GetMaxConnectionsPerChildJitter()),
		MaxMemoryPerChild:            r.GetMaxMemoryPerChild(),
		AcceptMutex:                  r.GetAcceptMutex(),
		Notes:                        r.GetNotes(),
		Name:                         r.GetName(),
	}
}

func maintainRequestToPB(r *MaintainRequest) *pb.MaintainRequest {
	if r == nil {
		return &pb.MaintainRequest{}
	}
	out := &pb.MaintainRequest{
		NowUnixNano:       unixNano(r.Now),
		Generation:        int64(r.Generation),
		TicksSinceRestart: int64(r.TicksSinceRestart),
		RecentUnixNano:    unixNano(r.Recent),
		Children:          make([]*pb.Child, len(r.Children)),
		Listeners:         make([]*pb.Listener, len(r.Listeners)),
	}
	for i, c := range r.Children {
		out.Children[i] = &pb.Child{
			Slot:              int64(c.Slot),
			Pid:               int64(c.PID),
			State:             string(c.State),
			IdleSlots:         int64(c.IdleSlots),
			BusySlots:         int64(c.BusySlots),
			Connections:       c.Connections,
			MemoryBytes:       c.MemoryBytes,
			StartedUnixNano:   unixNano(c.Started),
			RecentConnections: c.RecentConnections,
		}
	}
	for i, l := range r.Listeners {
		out.Listeners[i] = &pb.Listener{Addr: l.Addr, QueueDepth: int64(l.QueueDepth)}
	}
	return out
}

func maintainRequestFromPB(r *pb.MaintainRequest) *MaintainRequest {
	out := &MaintainRequest{
		Now:               fromUnixNano(r.GetNowUnixNano()),
		Generation:        int(r.GetGeneration()),
		TicksSinceRestart: int(r.GetTicksSinceRestart()),
		Recent:            fromUnixNano(r.GetRecentUnixNano()),
	}
	if n := len(r.GetChildren()); n > 0 {
		out.Children = make([]Child, n)
	}
	for i, c := range r.GetChildren() {
		out.Children[i] = Child{
			Slot:              int(c.GetSlot()),
			PID:               int(c.GetPid()),
			State:             ChildState(c.GetState()),
			IdleSlots:         int(c.GetIdleSlots()),
			BusySlots:         int(c.GetBusySlots()),
			Connections:       c.GetConnections(),
			MemoryBytes:       c.GetMemoryBytes(),
			Started:           fromUnixNano(c.GetStartedUnixNano()),
			RecentConnections: c.GetRecentConnections(),
		}
	}
	if n := len(r.GetListeners()); n > 0 {
		out.Listeners = make([]Listener, n)
	}
	for i, l := range r.GetListeners() {
		out.Listeners[i] = Listener{Addr: l.GetAddr(), QueueDepth: int(l.GetQueueDepth())}
	}
	return out
}

func maintainResponseToPB(r *MaintainResponse) *pb.MaintainResponse {
	out := &pb.MaintainResponse{
		Actions:    make([]*pb.Action, len(r.Actions)),
		Logs:       make([]*pb.Log, len(r.Logs)),
		ReachedMax: r.ReachedMax,
	}
	for i, a := range r.Actions {
		out.Actions[i] = &pb.Action{Kind: string(a.Kind), Count: int64(a.Count), Slot: int64(a.Slot), Reason: a.Reason}
	}
	for i, l := range r.Logs {
		out.Logs[i] = &pb.Log{Level: string(l.Level), Message: l.Message, Attrs: l.Attrs}
	}
	return out
}

func maintainResponseFromPB(r *pb.MaintainResponse) *MaintainResponse {
	out := &MaintainResponse{ReachedMax: r.GetReachedMax()}
	if n := len(r.GetActions()); n > 0 {
		out.Actions = make([]Action, n)
	}
	for i, a := range r.GetActions() {
		out.Actions[i] = Action{Kind: ActionKind(a.GetKind()), Count: int(a.GetCount()), Slot: int(a.GetSlot()), Reason: a.GetReason()}
	}
	if n := len(r.GetLogs()); n > 0 {
		out.Logs = make([]Log, n)
	}
	for i, l := range r.GetLogs() {
		out.Logs[i] = Log{Level: Level(l.GetLevel()), Message: l.GetMessage(), Attrs: l.GetAttrs()}
	}
	return out
}
