#!/usr/bin/env bash
# Installs what Strata's tests need, idempotently and quickly when present:
#   - protoc (Debian's protobuf-compiler) and the pinned protoc-gen-go /
#     protoc-gen-go-grpc, to check that generated code is current;
#   - versitygw, a real S3-compatible server for the tiered-storage tests.
# Tools go to $STRATA_TOOLS (default ~/.cache/strata-tools), outside the repo.
# Prints the bin directory to add to PATH on its last line.
set -euo pipefail

TOOLS=${STRATA_TOOLS:-$HOME/.cache/strata-tools}
BIN=$TOOLS/bin
mkdir -p "$BIN"

PROTOC_GEN_GO=v1.36.12
PROTOC_GEN_GO_GRPC=v1.6.0
VERSITYGW=v1.8.0

log() { echo "install-test-deps: $*" >&2; }

# stamp NAME VERSION: true when NAME was installed at VERSION already.
stamp() { [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.version" 2>/dev/null)" = "$2" ]; }
mark() { echo "$2" >"$BIN/.$1.version"; }

goinstall() { # name module version
	if stamp "$1" "$3"; then return; fi
	log "go install $2@$3"
	GOBIN="$BIN" go install "$2@$3"
	mark "$1" "$3"
}

if ! command -v protoc >/dev/null 2>&1; then
	if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
		log "apt-get install protobuf-compiler"
		apt-get install -y -qq protobuf-compiler >/dev/null 2>&1 ||
			{ apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq protobuf-compiler >/dev/null; }
	elif command -v sudo >/dev/null 2>&1; then
		sudo apt-get install -y -qq protobuf-compiler >/dev/null
	else
		log "protoc is missing and cannot be installed here (need root for apt-get install protobuf-compiler)"
		exit 1
	fi
fi

goinstall protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go $PROTOC_GEN_GO
goinstall protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc $PROTOC_GEN_GO_GRPC
goinstall versitygw github.com/versity/versitygw/cmd/versitygw $VERSITYGW

# Deployment test tools (helm, etcd, kube-apiserver); the first run builds kube-apiserver (minutes).
"$(dirname "$0")/install-deploy-test-deps.sh" >/dev/null

echo "$BIN"
