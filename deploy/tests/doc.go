// Package tests checks the deployment artifacts: the Dockerfile against the README's build
// command, the docker compose file, and the Helm chart (lint, render, strict decoding into the
// Kubernetes API types, the properties that matter, schema rejections, and a real install into
// a kube-apiserver started on loopback).
//
// Run with `cd deploy && go test ./...`. The helm, etcd and kube-apiserver binaries come from
// scripts/install-deploy-test-deps.sh; without them the tests that need them skip (or fail
// when CI or STRATA_CI is set).
package tests
