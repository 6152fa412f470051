#!/usr/bin/env bash
# Builds FerretDB v1.24.2 (MongoDB wire protocol on SQLite) into .tools/ferretdb from the Go module
# proxy, through the small wrapper in tools/ferretdb (see its main.go for why not `go install`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$root/.tools"
cd "$root/tools/ferretdb"
go build -trimpath -o "$root/.tools/ferretdb.tmp" .
mv "$root/.tools/ferretdb.tmp" "$root/.tools/ferretdb"
echo "FerretDB installed at .tools/ferretdb"
