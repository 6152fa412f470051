#!/usr/bin/env bash
# Installs what the tests need beyond npm packages, once: FerretDB (built into .tools/) and, for the
# end-to-end browser test, Debian's Chromium. Run by `npm test` before the tests.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$root/.tools/ferretdb" ] || bash "$root/scripts/install-ferretdb.sh"
