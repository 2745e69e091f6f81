#!/usr/bin/env bash
# `make deb`: podwire's Debian package, built by dpkg-buildpackage (debhelper) from packaging/debian/
# in a copy of the tree, then checked by lintian.
#   DEB_VERSION=0.1.0+1   the package's version (default: the top of packaging/debian/changelog;
#                         another one gets a changelog entry of its own in the copy)
#   DEB_OUT=build/deb     where the .deb, .buildinfo and .changes land
#   LINTIAN=0             skip lintian
# The wheels the bundled venv is made from are fetched once into build/deb/wheels/<key> (the key
# hashes pyproject's dependencies and build requirements): dpkg-buildpackage itself runs offline.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PY=${PY:-.venv/bin/python}
OUT=${DEB_OUT:-build/deb}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# The generated gRPC modules ship like the rest of the code (make setup compiles them).
"$PY" -m proto.compile

mapfile -t reqs < <("$PY" - <<'PY'
import tomllib
with open("pyproject.toml", "rb") as f:
    data = tomllib.load(f)
for req in data["project"]["dependencies"] + data["build-system"]["requires"] + ["wheel"]:
    print(req)
PY
)
key=$(printf '%s\n' "${reqs[@]}" | sha256sum | cut -c1-16)
wheels="$REPO/build/deb/wheels/$key"
if [ ! -d "$wheels" ]; then
  echo "deb: fetching wheels into ${wheels#"$REPO/"}"
  mkdir -p "$(dirname "$wheels")"
  fetched=$(mktemp -d "$wheels.XXXXXX")
  "$PY" -m pip wheel -q -w "$fetched" "${reqs[@]}"
  # Renamed into place whole; a build running beside this one may have got there first.
  mv -T "$fetched" "$wheels" 2>/dev/null || rm -rf "$fetched"
fi

top=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
version=${DEB_VERSION:-$top}
src="$OUT/src/podwire-$version"
rm -rf "$OUT/src"
mkdir -p "$src"
tar -C "$REPO" --exclude=__pycache__ --exclude=packaging/debian -cf - \
  pyproject.toml README.md Makefile cni cri netpol proto docs packaging | tar -C "$src" -xf -
cp -a packaging/debian "$src/debian"
if [ "$version" != "$top" ]; then
  maintainer=$(sed -n 's/^Maintainer: //p' packaging/debian/control)
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  { printf 'podwire (%s) unstable; urgency=medium\n\n  * Built from %s by make deb.\n\n -- %s  %s\n\n' \
      "$version" "$commit" "$maintainer" "$(date -R)"
    cat packaging/debian/changelog; } > "$src/debian/changelog"
fi

echo "deb: dpkg-buildpackage podwire $version"
(cd "$src" && PODWIRE_WHEELS="$wheels" dpkg-buildpackage -b -us -uc)
deb="$OUT/podwire_${version}_amd64.deb"
mv "$OUT/src/podwire_${version}_amd64.deb" "$OUT/src/podwire_${version}_amd64.buildinfo" \
  "$OUT/src/podwire_${version}_amd64.changes" "$OUT/"
rm -rf "$OUT/src"
echo "deb: $deb"

if [ "${LINTIAN:-1}" != 0 ]; then
  echo "deb: lintian (errors fail the build; overrides with their reasons: packaging/debian/podwire.lintian-overrides)"
  lintian --fail-on error --info "$deb"
fi
