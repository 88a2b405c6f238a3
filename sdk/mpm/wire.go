package mpm

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"time"

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
	settings := make(map[string]*pb.Value, len(req.Settings))
	for k, v := range req.Settings {
		pv, err := valueToPB(v)
		if err != nil {
			return nil, &SettingError{Key: k, Msg: err.Error()}
		}
		settings[k] = pv
	}
	return &pb.ConfigureRequest{Settings: settings}, nil
}

func settingsFromPB(in map[string]*pb.Value) (map[string]any, error) {
	out := make(map[string]any, len(in))
	for k, v := range in {
		gv, err := valueFromPB(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = gv
	}
	return out, nil
}

// valueToPB encodes a configuration value. Booleans, integers (int64
// range), floats, strings, nil, slices and arrays, maps with string keys,
// time.Duration (as its string, "1.5s", which is how it is written in
// YAML) and encoding.TextMarshaler values (as their text) are accepted.
func valueToPB(v any) (*pb.Value, error) {
	switch x := v.(type) {
	case nil:
		return &pb.Value{Kind: &pb.Value_NullValue{NullValue: true}}, nil
	case bool:
		return &pb.Value{Kind: &pb.Value_BoolValue{BoolValue: x}}, nil
	case string:
		return &pb.Value{Kind: &pb.Value_StringValue{StringValue: x}}, nil
	case time.Duration:
		return &pb.Value{Kind: &pb.Value_StringValue{StringValue: x.String()}}, nil
	case encoding.TextMarshaler:
		text, err := x.MarshalText()
		if err != nil {
			return nil, err
		}
		return &pb.Value{Kind: &pb.Value_StringValue{StringValue: string(text)}}, nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Bool:
		return &pb.Value{Kind: &pb.Value_BoolValue{BoolValue: rv.Bool()}}, nil
	case reflect.String:
		return &pb.Value{Kind: &pb.Value_StringValue{StringValue: rv.String()}}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return &pb.Value{Kind: &pb.Value_IntValue{IntValue: rv.Int()}}, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u > math.MaxInt64 {
			return nil, fmt.Errorf("integer %d is out of range", u)
		}
		return &pb.Value{Kind: &pb.Value_IntValue{IntValue: int64(u)}}, nil
	case reflect.Float32, reflect.Float64:
		return &pb.Value{Kind: &pb.Value_DoubleValue{DoubleValue: rv.Float()}}, nil
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return &pb.Value{Kind: &pb.Value_NullValue{NullValue: true}}, nil
		}
		list := &pb.ValueList{Values: make([]*pb.Value, rv.Len())}
		for i := range rv.Len() {
			e, err := valueToPB(rv.Index(i).Interface())
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			list.Values[i] = e
		}
		return &pb.Value{Kind: &pb.Value_ListValue{ListValue: list}}, nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map keys must be strings, not %s", rv.Type().Key())
		}
		if rv.IsNil() {
			return &pb.Value{Kind: &pb.Value_NullValue{NullValue: true}}, nil
		}
		m := &pb.ValueMap{Fields: make(map[string]*pb.Value, rv.Len())}
		for it := rv.MapRange(); it.Next(); {
			k := it.Key().String()
			e, err := valueToPB(it.Value().Interface())
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			m.Fields[k] = e
		}
		return &pb.Value{Kind: &pb.Value_MapValue{MapValue: m}}, nil
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return &pb.Value{Kind: &pb.Value_NullValue{NullValue: true}}, nil
		}
		return valueToPB(rv.Elem().Interface())
	}
	return nil, fmt.Errorf("unsupported value type %T", v)
}

// valueFromPB decodes a value as YAML decoding produces it: nil, bool, int,
// float64, string, []any or map[string]any.
func valueFromPB(v *pb.Value) (any, error) {
	switch k := v.GetKind().(type) {
	case nil, *pb.Value_NullValue:
		return nil, nil
	case *pb.Value_BoolValue:
		return k.BoolValue, nil
	case *pb.Value_IntValue:
		if int64(int(k.IntValue)) != k.IntValue {
			return nil, fmt.Errorf("integer %d overflows int", k.IntValue)
		}
		return int(k.IntValue), nil
	case *pb.Value_DoubleValue:
		return k.DoubleValue, nil
	case *pb.Value_StringValue:
		return k.StringValue, nil
	case *pb.Value_ListValue:
		out := make([]any, len(k.ListValue.GetValues()))
		for i, e := range k.ListValue.GetValues() {
			gv, err := valueFromPB(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = gv
		}
		return out, nil
	case *pb.Value_MapValue:
		out := make(map[string]any, len(k.MapValue.GetFields()))
		for key, e := range k.MapValue.GetFields() {
			gv, err := valueFromPB(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			out[key] = gv
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown value kind %T", v.GetKind())
}

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
		Children:          make([]*pb.Child, len(r.Children)),
		Listeners:         make([]*pb.Listener, len(r.Listeners)),
	}
	for i, c := range r.Children {
		out.Children[i] = &pb.Child{
			Slot:            int64(c.Slot),
			Pid:             int64(c.PID),
			State:           string(c.State),
			IdleSlots:       int64(c.IdleSlots),
			BusySlots:       int64(c.BusySlots),
			Connections:     c.Connections,
			MemoryBytes:     c.MemoryBytes,
			StartedUnixNano: unixNano(c.Started),
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
	}
	if n := len(r.GetChildren()); n > 0 {
		out.Children = make([]Child, n)
	}
	for i, c := range r.GetChildren() {
		out.Children[i] = Child{
			Slot:        int(c.GetSlot()),
			PID:         int(c.GetPid()),
			State:       ChildState(c.GetState()),
			IdleSlots:   int(c.GetIdleSlots()),
			BusySlots:   int(c.GetBusySlots()),
			Connections: c.GetConnections(),
			MemoryBytes: c.GetMemoryBytes(),
			Started:     fromUnixNano(c.GetStartedUnixNano()),
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
