#!/bin/sh
# gen.sh regenerates the plugin protocol's Go code (sdk/internal/proto/...)
# from the .proto sources under proto/ at the module root.
#
# It needs protoc on PATH (Debian's protobuf-compiler, 3.21). The Go code
# generators are the module's pinned tools (the `tool` lines of go.mod), so
# the output depends on go.mod, not on what is in GOPATH/bin.
set -eu
root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
out=sdk/internal/proto
rm -f "$out"/phased/plugin/v1/*.pb.go
protoc -I proto \
	--plugin=protoc-gen-go="$(go tool -n protoc-gen-go)" \
	--plugin=protoc-gen-go-grpc="$(go tool -n protoc-gen-go-grpc)" \
	--go_out="$out" --go_opt=paths=source_relative \
	--go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
	proto/phased/plugin/v1/*.proto
