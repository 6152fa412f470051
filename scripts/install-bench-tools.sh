#!/usr/bin/env bash
# Installs the benchmark's gRPC load generator, ghz, pinned, into .tools/ from the Go module proxy. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/.tools"
version=v0.93.0
mkdir -p "$tools"
have=""
[ -x "$tools/ghz" ] && have=$(go version -m "$tools/ghz" 2>/dev/null | awk '$1=="mod"{print $3; exit}')
[ "$have" = "$version" ] || (cd "$tools" && GOBIN="$tools" GOFLAGS=-mod=mod go install "github.com/bojand/ghz/cmd/ghz@$version")
