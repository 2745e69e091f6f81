#!/usr/bin/env bash
# Link the reference CNI plugins a distribution keeps outside the runtimes' bin dir (Debian's
# containernetworking-plugins: /usr/lib/cni) into it (/opt/cni/bin): containerd and CRI-O look in
# that one directory, for the portmap podwire's conflist chains and the loopback they run for
# every pod.  Only names missing there are linked, and each link made is recorded, so `unlink`
# removes those links and nothing an admin or another package put there.
# Usage: cni_plugin_links.sh link|unlink BIN_DIR RECORD    (FROM_DIR, default /usr/lib/cni)
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 link|unlink BIN_DIR RECORD" >&2; exit 2; }
BIN_DIR=$2 RECORD=$3
: "${FROM_DIR:=/usr/lib/cni}"

case "$1" in
link)
  [ -d "$FROM_DIR" ] || exit 0
  install -d "$BIN_DIR" "$(dirname "$RECORD")"
  linked=()
  for plugin in "$FROM_DIR"/*; do
    name=$(basename "$plugin")
    if [ ! -f "$plugin" ] || [ ! -x "$plugin" ]; then continue; fi
    # Whatever is there already stays, a dangling link included: it is not ours to replace.
    if [ -e "$BIN_DIR/$name" ] || [ -L "$BIN_DIR/$name" ]; then continue; fi
    ln -s "$plugin" "$BIN_DIR/$name"
    echo "$BIN_DIR/$name $plugin" >> "$RECORD"
    linked+=("$name")
  done
  if [ ${#linked[@]} -gt 0 ]; then
    echo "install: linked ${linked[*]} from $FROM_DIR into $BIN_DIR (containerd and CRI-O look only there)"
  fi
  ;;
unlink)
  [ -f "$RECORD" ] || exit 0
  removed=()
  # A link replaced or repointed since is someone else's now: only our link, unchanged, goes.
  while read -r link target; do
    if [ -L "$link" ] && [ "$(readlink "$link")" = "$target" ]; then rm -f "$link"; removed+=("$(basename "$link")"); fi
  done < "$RECORD"
  rm -f "$RECORD"
  if [ ${#removed[@]} -gt 0 ]; then echo "uninstall: removed the links to ${removed[*]} from $BIN_DIR"; fi
  ;;
*) echo "usage: $0 link|unlink BIN_DIR RECORD" >&2; exit 2 ;;
esac
