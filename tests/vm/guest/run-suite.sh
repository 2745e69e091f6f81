#!/bin/bash
# Inside the guest, from the checkout bootstrap.sh mounted at /mnt/src: copy it, run the requested
# pytest suite, hand back the log, a JUnit report, facts about this node and the exit status
# through the "out" share.
set -u
out=/mnt/out
mkdir -p "$out"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out "$out"
# shellcheck disable=SC1091
. "$out/request.env"     # VM_SUITE, VM_PYTEST_ARGS, VM_VENV
echo "vm: booted in $(cut -d' ' -f1 /proc/uptime) s"
# A writable copy: the tests write caches and scratch files beside the code.
mkdir -p /root/podwire
tar -C /mnt/src --exclude=./.venv --exclude=./build --exclude=./.git --exclude='__pycache__' -cf - . \
  | tar -C /root/podwire -xf -
cd /root/podwire
cgroup=$(stat -fc %T /sys/fs/cgroup)   # cgroup2fs: unified (v2); tmpfs: v1 or hybrid
cat > "$out/facts.json" <<FACTS
{"kernel": "$(uname -r)", "pid1": "$(cat /proc/1/comm)", "cgroup_fs": "$cgroup",
 "cgroup_version": "$([ "$cgroup" = cgroup2fs ] && echo v2 || echo v1)",
 "cmdline": "$(cat /proc/cmdline)", "cpus": $(nproc)}
FACTS
export PODWIRE_IN_VM=1
set -f   # node ids such as test_x[daemon-sctp-only] are not globs
# shellcheck disable=SC2086
"$VM_VENV/bin/python" -m pytest $VM_SUITE -p no:cacheprovider -q -rs $VM_PYTEST_ARGS \
  --junitxml="$out/junit.xml" 2>&1 | tee "$out/pytest.log"
rc=${PIPESTATUS[0]}
journalctl -b --no-pager > "$out/journal.log" 2>&1
echo "$rc" > "$out/rc"
sync
