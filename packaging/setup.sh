#!/usr/bin/env bash
# Idempotent node/developer set-up: Debian packages that are missing, the venv, the project.
# Called by `make setup`; safe to run again (it only installs what is absent).
set -euo pipefail
cd "$(dirname "$0")/.."

# The package list (one place, shared with the VM image builder): words before any "#".
mapfile -t APT_PACKAGES < <(sed -e 's/#.*//' packaging/debian-packages.txt | tr -s ' \t' '\n' | grep -v '^$')
# EXTRA_APT: more packages for one target (make vm-test: qemu and mmdebstrap).
read -r -a extra <<< "${EXTRA_APT:-}"
APT_PACKAGES+=("${extra[@]}")
VENV=${VENV:-.venv}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# bcc finds kernel headers at /lib/modules/$(uname -r)/{build,source}.  A kernel without a headers
# package of its own (a VM's custom kernel) gets Debian's amd64 ones: the netpol programs use only
# UAPI definitions and plain map types, so those headers compile programs this kernel loads.
kdir="/lib/modules/$(uname -r)"
shopt -s nullglob
amd64_headers=(/usr/src/linux-headers-*-amd64) common_headers=(/usr/src/linux-headers-*-common)
shopt -u nullglob
if [ ! -e "$kdir/build" ] && [ ${#amd64_headers[@]} -gt 0 ]; then
  mkdir -p "$kdir"
  ln -sfn "${amd64_headers[-1]}" "$kdir/build"
  echo "setup: $kdir/build -> ${amd64_headers[-1]}"
fi
if [ ! -e "$kdir/source" ] && [ ${#common_headers[@]} -gt 0 ]; then
  mkdir -p "$kdir"
  ln -sfn "${common_headers[-1]}" "$kdir/source"
  echo "setup: $kdir/source -> ${common_headers[-1]}"
fi

# Debian's python (not a pyenv one): bcc's python3-bpfcc lives in its dist-packages.
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
stamp="$VENV/.podwire-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing podwire into $VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e '.[test]'
  touch "$stamp"
fi

# podwire's own gRPC APIs (proto/*.proto -> proto/*_pb2*.py); only what is out of date.
"$VENV/bin/python" -m proto.compile
