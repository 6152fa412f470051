#!/usr/bin/env bash
# Installs the code generators (and grpcurl) the contract needs beyond npm, pinned, into .tools/:
# Go plugins from the Go module proxy, grpcio-tools (and protovalidate, for the interop test) into
# a Python venv. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/.tools"
mkdir -p "$tools"
install_go() { # binary module@version
  local want="$2" have=""
  [ -x "$tools/$1" ] && have=$(go version -m "$tools/$1" 2>/dev/null | awk '$1=="mod"{print $2"@"$3; exit}')
  [ "${have#*@}" = "${want#*@}" ] || (cd "$tools" && GOBIN="$tools" GOFLAGS=-mod=mod go install "$3@${want#*@}")
}
install_go protoc-gen-go google.golang.org/protobuf@v1.36.12 google.golang.org/protobuf/cmd/protoc-gen-go
install_go protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2 google.golang.org/grpc/cmd/protoc-gen-go-grpc
install_go protoc-gen-openapi github.com/google/gnostic@v0.7.1 github.com/google/gnostic/cmd/protoc-gen-openapi
install_go grpcurl github.com/fullstorydev/grpcurl@v1.9.4 github.com/fullstorydev/grpcurl/cmd/grpcurl

if [ ! -x "$tools/venv/bin/python" ] || ! "$tools/venv/bin/python" -c 'import grpc_tools, pytest, google.api, protovalidate' 2>/dev/null; then
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check \
    grpcio-tools==1.85.1 grpcio==1.85.1 googleapis-common-protos==1.76.0 protovalidate==2.1.0 pytest==8.4.2
fi
