#!/usr/bin/env bash
# Regenerates gen/ from proto/: TypeScript (buf.gen.yaml), Go and OpenAPI (buf.gen.clients.yaml),
# Python (grpcio-tools). gen/ is committed and never edited; a test checks it is what this writes.
# With an argument, generates into that directory's gen/ instead (the freshness test does).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$root}
bash "$root/scripts/install-codegen-tools.sh" >/dev/null
export PATH="$root/.tools:$root/node_modules/.bin:$PATH"
cd "$work"
buf generate --template "$root/buf.gen.yaml"          # clean: true empties gen/ first
buf generate --template "$root/buf.gen.clients.yaml"
buf lint

# Go: a module consumers can `go get`; its go.sum is what `go mod tidy` resolves.
cp "$root/clients/go/go.mod" gen/go/go.mod
(cd gen/go && GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1)

# Python: a package under gen/python (pip install ./gen/python). It carries buf/validate too: the
# protovalidate package validates messages but ships no validate_pb2 for the rules to import.
mkdir -p gen/python
"$root/.tools/venv/bin/python" -m grpc_tools.protoc -I proto \
  --python_out=gen/python --pyi_out=gen/python --grpc_python_out=gen/python \
  proto/oauth2broker/v1/*.proto proto/buf/validate/validate.proto
touch gen/python/oauth2broker/__init__.py gen/python/oauth2broker/v1/__init__.py gen/python/buf/__init__.py gen/python/buf/validate/__init__.py
cp "$root/clients/python/pyproject.toml" gen/python/pyproject.toml
