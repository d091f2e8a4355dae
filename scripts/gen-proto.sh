#!/usr/bin/env bash
# Regenerates the Go code for every .proto under api/ into OUT (default: the
# repository itself). Needs protoc and the pinned plugins from
# scripts/install-test-deps.sh on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.}
mod=github.com/strata-mq/strata
protoc -I api \
  --go_out="$out" --go_opt=module=$mod \
  --go-grpc_out="$out" --go-grpc_opt=module=$mod \
  api/*.proto
