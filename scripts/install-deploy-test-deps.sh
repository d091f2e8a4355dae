#!/usr/bin/env bash
# Installs what the deployment tests (`cd deploy && go test ./...`) need, idempotently and
# quickly when present:
#   - helm (built from its Go module) for `helm lint`, `helm template` and `helm install`;
#   - etcd and kube-apiserver (built from their Go modules) so the tests can install the chart
#     into a real Kubernetes API server on loopback (no kubelet: the point is API validation).
#
# Every tool is built from source through the Go module proxy, in throwaway wrapper modules
# under $STRATA_TOOLS/src (never in this repository), and installed into $STRATA_TOOLS/bin
# (default ~/.cache/strata-tools/bin) with a version stamp, so later runs skip it.
# The first run takes a while (kube-apiserver alone is several minutes on two cores); builds run
# under `nice` with `go build -p ${STRATA_BUILD_P:-1}` so they do not starve other work.
# Prints the bin directory to add to PATH on its last line.
set -euo pipefail

TOOLS=${STRATA_TOOLS:-$HOME/.cache/strata-tools}
BIN=$TOOLS/bin
SRC=$TOOLS/src
mkdir -p "$BIN" "$SRC"

HELM_VERSION=v3.22.0
ETCD_VERSION=v3.7.3
K8S_VERSION=v1.37.2
# The staging modules (k8s.io/api, apimachinery, apiserver, ...) of Kubernetes v1.X.Y are
# published as v0.X.Y.
K8S_STAGING_VERSION=v0.${K8S_VERSION#v1.}
BUILD_P=${STRATA_BUILD_P:-1}

# Never switch toolchains behind our back, ignore any go.work or GOFLAGS of the caller, and
# build static binaries.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off GOFLAGS=

log() { echo "install-deploy-test-deps: $*" >&2; }

# stamp NAME VERSION: true when NAME was installed at VERSION already.
stamp() { [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.version" 2>/dev/null)" = "$2" ]; }
mark() { echo "$2" >"$BIN/.$1.version"; }

# wrapper NAME: prints a fresh wrapper module directory for NAME.
wrapper() {
	local dir=$SRC/$1
	rm -rf "$dir"
	mkdir -p "$dir"
	echo "$dir"
}

# build NAME PACKAGE LDFLAGS DIR: builds PACKAGE in the wrapper module DIR into $BIN/NAME.
build() {
	local name=$1 pkg=$2 ldflags=$3 dir=$4 start=$SECONDS
	(
		cd "$dir"
		log "$name: resolving modules (go mod tidy)"
		if ! nice -n 19 go mod tidy >tidy.log 2>&1; then
			cat tidy.log >&2
			exit 1
		fi
		log "$name: building $pkg (go build -p $BUILD_P)"
		nice -n 19 go build -p "$BUILD_P" -trimpath -ldflags "$ldflags" -o "$BIN/$name.tmp" "$pkg"
	)
	mv "$BIN/$name.tmp" "$BIN/$name"
	log "$name: built in $((SECONDS - start))s"
}

install_helm() {
	stamp helm "$HELM_VERSION" && return
	local dir minor=${K8S_STAGING_VERSION#v0.}
	minor=${minor%%.*}
	dir=$(wrapper helm)
	cat >"$dir/go.mod" <<EOF
module strata.local/tools/helm

go 1.26.0

require helm.sh/helm/v3 $HELM_VERSION

tool helm.sh/helm/v3/cmd/helm
EOF
	# Tell helm which Kubernetes version `helm template` assumes, as helm's own Makefile does.
	local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
	ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
	ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
	build helm helm.sh/helm/v3/cmd/helm "$ld" "$dir"
	mark helm "$HELM_VERSION"
}

install_etcd() {
	stamp etcd "$ETCD_VERSION" && return
	local dir
	dir=$(wrapper etcd)
	# go.etcd.io/etcd/server/v3's root package is etcd's main package.
	cat >"$dir/go.mod" <<EOF
module strata.local/tools/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION

tool go.etcd.io/etcd/server/v3
EOF
	build etcd go.etcd.io/etcd/server/v3 "-s -w" "$dir"
	mark etcd "$ETCD_VERSION"
}

install_kube_apiserver() {
	stamp kube-apiserver "$K8S_VERSION" && return
	local dir gomod mods
	dir=$(wrapper kube-apiserver)
	# k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with
	# ./staging/src/...; a module that depends on it must replace each one with its published
	# version instead. Read the list from k8s.io/kubernetes's own go.mod.
	gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
	[ -f "$gomod" ] || { log "cannot download k8s.io/kubernetes@$K8S_VERSION's go.mod"; exit 1; }
	# Lines "k8s.io/x => ./staging/src/k8s.io/x", inside a replace block or after "replace".
	mods=$(awk '{ if ($1 == "replace") { $1 = ""; $0 = $0 } }
		$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "$gomod")
	[ -n "$mods" ] || { log "no staging replacements found in $gomod"; exit 1; }
	{
		printf 'module strata.local/tools/kube-apiserver\n\ngo 1.26.0\n\n'
		printf 'require k8s.io/kubernetes %s\n\ntool k8s.io/kubernetes/cmd/kube-apiserver\n\nreplace (\n' "$K8S_VERSION"
		for m in $mods; do printf '\t%s => %s %s\n' "$m" "$m" "$K8S_STAGING_VERSION"; done
		printf ')\n'
	} >"$dir/go.mod"
	local minor=${K8S_STAGING_VERSION#v0.} ld="-s -w" v
	minor=${minor%%.*}
	for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=" -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
	done
	build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$ld" "$dir"
	mark kube-apiserver "$K8S_VERSION"
}

command -v go >/dev/null 2>&1 || { log "go is required"; exit 1; }

install_helm
install_etcd
install_kube_apiserver

echo "$BIN"
