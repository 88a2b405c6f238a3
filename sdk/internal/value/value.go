// Package value converts configuration values, as YAML decodes them,
// to and from the plugin protocol's Value message: an MPM's settings and a
// hook entry's settings travel the same way.
package value

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"time"

	pb "github.com/phasedhq/phased/sdk/internal/proto/phased/plugin/v1"
)

// MapToPB encodes settings; on error it returns the key at fault.
func MapToPB(in map[string]any) (map[string]*pb.Value, string, error) {
	out := make(map[string]*pb.Value, len(in))
	for k, v := range in {
		pv, err := ToPB(v)
		if err != nil {
			return nil, k, err
		}
		out[k] = pv
	}
	return out, "", nil
}

// MapFromPB decodes settings; an error names the key at fault.
func MapFromPB(in map[string]*pb.Value) (map[string]any, error) {
	out := make(map[string]any, len(in))
	for k, v := range in {
		gv, err := FromPB(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = gv
	}
	return out, nil
}

// ToPB encodes a configuration value. Booleans, integers (int64
// range), floats, strings, nil, slices and arrays, maps with string keys,
// time.Duration (as its string, "1.5s", which is how it is written in
// YAML) and encoding.TextMarshaler values (as their text) are accepted.
func ToPB(v any) (*pb.Value, error) {
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
			e, err := ToPB(rv.Index(i).Interface())
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
			e, err := ToPB(it.Value().Interface())
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
		return ToPB(rv.Elem().Interface())
	}
	return nil, fmt.Errorf("unsupported value type %T", v)
}

// FromPB decodes a value as YAML decoding produces it: nil, bool, int,
// float64, string, []any or map[string]any.
func FromPB(v *pb.Value) (any, error) {
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
			gv, err := FromPB(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = gv
		}
		return out, nil
	case *pb.Value_MapValue:
		out := make(map[string]any, len(k.MapValue.GetFields()))
		for key, e := range k.MapValue.GetFields() {
			gv, err := FromPB(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			out[key] = gv
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown value kind %T", v.GetKind())
}
