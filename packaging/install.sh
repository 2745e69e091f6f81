#!/usr/bin/env bash
# Place podwire on a node: a private venv under $PREFIX/lib/podwire, the CNI executables in
# $CNI_BIN_DIR (runnable with no venv activated), the default conflist in $CNI_CONF_DIR.
# DESTDIR is honoured for package builds; the executables refer to the final (non-DESTDIR) paths.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PREFIX:=/usr/local}" "${DESTDIR:=}" "${CNI_BIN_DIR:=/opt/cni/bin}" "${CNI_CONF_DIR:=/etc/cni/net.d}"
LIBDIR="$PREFIX/lib/podwire"
VENV="$DESTDIR$LIBDIR/venv"
CONFLIST="$DESTDIR$CNI_CONF_DIR/10-podwire.conflist"

case "${1:-install}" in
install)
  if [ ! -x "$VENV/bin/python" ]; then /usr/bin/python3 -m venv --system-site-packages "$VENV"; fi
  "$VENV/bin/pip" install -q --upgrade .
  install -d "$DESTDIR$CNI_BIN_DIR" "$DESTDIR$CNI_CONF_DIR"
  "$VENV/bin/python" -m cni.install --bin-dir "$DESTDIR$CNI_BIN_DIR" --python "$LIBDIR/venv/bin/python"
  if [ ! -e "$CONFLIST" ]; then
    install -m 0644 packaging/cni/10-podwire.conflist "$CONFLIST"
    echo "install: wrote $CONFLIST"
  else
    echo "install: kept existing $CONFLIST"
  fi
  echo "install: podwire, podwire-ipam -> $DESTDIR$CNI_BIN_DIR (venv $VENV)"
  ;;
uninstall)
  rm -f "$DESTDIR$CNI_BIN_DIR/podwire" "$DESTDIR$CNI_BIN_DIR/podwire-ipam"
  # The conflist is removed only if it is still ours, unchanged.
  if [ -e "$CONFLIST" ] && cmp -s "$CONFLIST" packaging/cni/10-podwire.conflist; then rm -f "$CONFLIST"; fi
  rm -rf "$DESTDIR$LIBDIR"
  echo "uninstall: removed podwire from $DESTDIR$CNI_BIN_DIR and $DESTDIR$LIBDIR"
  ;;
*) echo "usage: $0 install|uninstall" >&2; exit 2 ;;
esac
