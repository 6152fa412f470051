#!/usr/bin/env bash
# Installs what the tests need beyond npm packages, once: FerretDB (built into .tools/) and, for the
# end-to-end browser test, Debian's Chromium. Run by `npm test` before the tests.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$root/.tools/ferretdb" ] || bash "$root/scripts/install-ferretdb.sh"

chromium=${CHROMIUM_PATH:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  echo "installing Chromium from Debian's packages for the end-to-end browser test…"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
bash "$root/scripts/install-codegen-tools.sh"
