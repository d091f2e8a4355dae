# Strata build and test entry points. `make test` is what CI runs.
SHELL := /bin/bash
STRATA_TOOLS ?= $(HOME)/.cache/strata-tools
export STRATA_TOOLS
export PATH := $(STRATA_TOOLS)/bin:$(PATH)
export STRATA_CI ?= $(CI)
GO ?= go
PKGS := ./...
# Packages whose tests exercise concurrency; `test` runs them under -race.
TEST_TIMEOUT ?= 40m

.PHONY: pulsar-compat layering all build test test-race test-short test-deploy attack-rss chaos chaos-selftest geo-stress deps verify fmt vet proto proto-check bench clean

all: build

build:
	$(GO) build -o bin/strata ./cmd/strata

## test: install test dependencies, verify, then run every test with the race detector.
test: deps verify
	$(GO) test -race -timeout $(TEST_TIMEOUT) $(PKGS)
	cd deploy && $(GO) test -timeout 10m ./...
	cd compat/pulsar && $(GO) test -count=1 -timeout 10m ./...

## pulsar-compat: pulsar-client-go's own integration tests against a standalone on :6650/:8080 (scripts/pulsar-client-compat.sh).
pulsar-compat:
	scripts/pulsar-client-compat.sh

## test-deploy: Dockerfile, compose and Helm chart tests, including an install into a kube-apiserver.
test-deploy:
	@scripts/install-deploy-test-deps.sh >/dev/null
	cd deploy && $(GO) test -timeout 10m ./...

## test-race: the race-detector run alone (no dependency install, no verify).
test-race:
	$(GO) test -race -timeout $(TEST_TIMEOUT) $(PKGS)

## test-short: quick tests only, no race detector.
test-short:
	$(GO) test -short $(PKGS)

deps:
	@scripts/install-test-deps.sh >/dev/null

## verify: gofmt, go vet, generated code current, import layering (internal/layering).
verify: fmt vet proto-check layering

layering:
	$(GO) test -count=1 ./internal/layering/

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)
	cd deploy && $(GO) vet ./...
	cd compat/pulsar && $(GO) vet ./...

proto:
	scripts/gen-proto.sh

proto-check:
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	scripts/gen-proto.sh $$tmp; \
	for f in $$(cd $$tmp && find . -name '*.go'); do \
		cmp -s $$tmp/$$f $$f || { echo "generated code is stale: $$f (run make proto)"; exit 1; }; \
	done; echo "generated code is current"

## bench: storage benchmarks (see docs/performance.md for how to read them).
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3s ./bookie/ ./ledger/...

## attack-rss: a standalone broker's RSS under memory attacks from clients (docs/security.md, "Limits").
attack-rss:
	$(GO) test -tags attack -run TestAttackRSS -count=1 -v -timeout 20m ./cmd/strata/

## chaos: a soak run of the fault harness (docs/testing.md): make chaos DURATION=30m SEED=42
COUNT ?= 20
DURATION ?= 30m
SEED ?=
chaos: deps
	STRATA_CHAOS_DURATION=$(DURATION) STRATA_CHAOS_SEED=$(SEED) $(GO) test -tags chaos_soak -run TestChaosSoak -count=1 -v -timeout 0 ./internal/chaos/

## geo-stress: kill a topic's owner with sends in flight while it replicates, COUNT times (the stress run that found a replication loss; docs/testing.md).
geo-stress: deps
	$(GO) test -race -tags geo_stress -run TestGeoStressInflightOwnerKill -count=$(COUNT) -v -timeout 0 ./broker/

## chaos-selftest: the fault harness sees loss when a guarantee is broken on purpose.
chaos-selftest: deps
	$(GO) test -tags chaos_selftest -run TestChaosSees -count=1 -v -timeout 30m ./internal/chaos/

clean:
	rm -rf bin
