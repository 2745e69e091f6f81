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
: "${UNIT_DIR:=/etc/systemd/system}"
COMMANDS=(podwire-cnid podwire-cri podwire-ctl podwire-netpol podwire-doctor)   # linked into $PREFIX/bin
UNITS=(podwire-cnid.service podwire-cri.service podwire-netpol.service)  # from packaging/systemd, @PREFIX@ substituted
CRI_TOML="$DESTDIR/etc/podwire/cri.toml"
PLUGIN_LINKS="$DESTDIR$LIBDIR/cni-plugin-links"   # the reference plugins' links install made
systemd_running() { [ -z "$DESTDIR" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

case "${1:-install}" in
install)
  if [ ! -x "$VENV/bin/python" ]; then /usr/bin/python3 -m venv --system-site-packages "$VENV"; fi
  "$VENV/bin/python" -m pip install -q --upgrade .
  install -d "$DESTDIR$CNI_BIN_DIR" "$DESTDIR$CNI_CONF_DIR"
  # The executables import podwire from the venv's site-packages, as the node will see it.
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
  "$VENV/bin/python" -m cni.install --bin-dir "$DESTDIR$CNI_BIN_DIR" --python "$LIBDIR/venv/bin/python" \
    --code-dir "${site#"$DESTDIR"}" --native "${CNI_NATIVE_CLIENT:-no}"   # yes|auto: the opt-in C client
  # A staged venv must run from the final path: its scripts' shebangs and activate files name it.
  if [ -n "$DESTDIR" ]; then
    { grep -rlIF --null "$VENV" "$VENV/bin" "$VENV/pyvenv.cfg" || true; } | xargs -0 -r sed -i "s|$VENV|$LIBDIR/venv|g"
  fi
  install -d "$DESTDIR$PREFIX/bin" "$DESTDIR$UNIT_DIR"
  for cmd in "${COMMANDS[@]}"; do ln -sfn "$LIBDIR/venv/bin/$cmd" "$DESTDIR$PREFIX/bin/$cmd"; done
  # Where the units' Documentation= points; the component docs beside it, as README.md links them.
  install -D -m 0644 README.md "$DESTDIR$PREFIX/share/doc/podwire/README.md"
  rm -rf "$DESTDIR$PREFIX/share/doc/podwire/docs"   # no page of an older version left behind
  install -d "$DESTDIR$PREFIX/share/doc/podwire/docs"
  install -m 0644 docs/*.md "$DESTDIR$PREFIX/share/doc/podwire/docs/"
  install -D -m 0644 packaging/kubernetes/rbac.yaml "$DESTDIR$PREFIX/share/doc/podwire/kubernetes/rbac.yaml"
  for unit in "${UNITS[@]}"; do
    sed "s|@PREFIX@|$PREFIX|g" "packaging/systemd/$unit" > "$DESTDIR$UNIT_DIR/$unit"
    chmod 0644 "$DESTDIR$UNIT_DIR/$unit"
  done
  if systemd_running; then
    systemctl daemon-reload
    # A running daemon must serve the code the executables now are (not-running stays so).
    systemctl try-restart "${UNITS[@]}"
  fi
  if [ ! -e "$CONFLIST" ]; then
    install -m 0644 packaging/cni/10-podwire.conflist "$CONFLIST"
    echo "install: wrote $CONFLIST"
  else
    echo "install: kept existing $CONFLIST"
  fi
  if [ ! -e "$CRI_TOML" ]; then
    install -d "$(dirname "$CRI_TOML")"
    install -m 0644 packaging/cri/cri.toml "$CRI_TOML"
    echo "install: wrote $CRI_TOML"
  else
    echo "install: kept existing $CRI_TOML"
  fi
  # The reference plugins where containerd and CRI-O look for them.  Not into a package's staging
  # tree: which are missing is the node's business, not the build host's.
  if [ -z "$DESTDIR" ]; then packaging/cni_plugin_links.sh link "$CNI_BIN_DIR" "$PLUGIN_LINKS"; fi
  echo "install: podwire, podwire-ipam -> $DESTDIR$CNI_BIN_DIR (venv $VENV)"
  echo "install: ${UNITS[*]} -> $DESTDIR$UNIT_DIR (start with: systemctl enable --now ${UNITS[*]})"
  echo "install: check the node with: podwire-doctor"
  ;;
uninstall)
  if systemd_running; then systemctl disable --now "${UNITS[@]}" 2>/dev/null || true; fi
  # Stopping the policy agent leaves its programs enforcing; uninstalling removes them.
  if [ -z "$DESTDIR" ] && [ -x "$VENV/bin/podwire-netpol" ]; then "$VENV/bin/podwire-netpol" teardown || true; fi
  for unit in "${UNITS[@]}"; do rm -f "$DESTDIR$UNIT_DIR/$unit"; done
  for cmd in "${COMMANDS[@]}"; do rm -f "$DESTDIR$PREFIX/bin/$cmd"; done
  rm -rf "$DESTDIR$PREFIX/share/doc/podwire"
  if systemd_running; then systemctl daemon-reload; fi
  rm -f "$DESTDIR$CNI_BIN_DIR/podwire" "$DESTDIR$CNI_BIN_DIR/podwire-ipam"
  packaging/cni_plugin_links.sh unlink "$DESTDIR$CNI_BIN_DIR" "$PLUGIN_LINKS"   # before the record goes with $LIBDIR
  # The conflist is removed only if it is still ours, unchanged.
  if [ -e "$CONFLIST" ] && cmp -s "$CONFLIST" packaging/cni/10-podwire.conflist; then rm -f "$CONFLIST"; fi
  if [ -e "$CRI_TOML" ] && cmp -s "$CRI_TOML" packaging/cri/cri.toml; then rm -f "$CRI_TOML"; fi
  rm -rf "$DESTDIR$LIBDIR"
  rm -rf "$DESTDIR/var/cache/podwire"   # compiled BPF programs: rebuilt by the next agent start
  echo "uninstall: removed podwire from $DESTDIR$CNI_BIN_DIR and $DESTDIR$LIBDIR"
  ;;
*) echo "usage: $0 install|uninstall" >&2; exit 2 ;;
esac
