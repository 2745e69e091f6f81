#!/bin/bash
# Inside the guest, from the checkout bootstrap.sh mounted at /mnt/src: copy it, run the requested
# pytest passes (one per cgroup driver of the e2e shims), hand back their logs, JUnit reports and
# exit statuses, facts about this node and the journal through the "out" share.
set -u
# Parsed whole before it runs (the braces): bash reads a script as it goes, and this one lives
# in the live checkout, where an edit during a run would otherwise change what runs next.
{
out=/mnt/out
mkdir -p "$out"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out "$out"
# shellcheck disable=SC1091
. "$out/request.env"     # VM_PASSES, VM_SUITE_<driver>, VM_PYTEST_ARGS, VM_VENV
echo "vm: booted in $(cut -d' ' -f1 /proc/uptime) s"
# A writable copy: the tests write caches and scratch files beside the code.
mkdir -p /root/podwire
tar -C /mnt/src --exclude=./.venv --exclude=./build --exclude=./.git --exclude='__pycache__' -cf - . \
  | tar -C /root/podwire -xf -
cd /root/podwire
# The NIC run.py gives the guest (QEMU user networking: 10.0.2.15, gateway 10.0.2.2): a node's
# address and default route, configured by hand (the image runs no network manager).
for link in /sys/class/net/*; do
  if [ -e "$link/device" ] && [ "$(cat "$link/type")" = 1 ]; then
    nic=${link##*/}
    ip link set "$nic" up && ip addr add 10.0.2.15/24 dev "$nic" && ip route add default via 10.0.2.2
    echo "vm: $nic is 10.0.2.15/24, default via 10.0.2.2"
    break
  fi
done
cgroup=$(stat -fc %T /sys/fs/cgroup)   # cgroup2fs: unified (v2); tmpfs: v1 or hybrid
cat > "$out/facts.json" <<FACTS
{"kernel": "$(uname -r)", "pid1": "$(cat /proc/1/comm)", "cgroup_fs": "$cgroup",
 "cgroup_version": "$([ "$cgroup" = cgroup2fs ] && echo v2 || echo v1)",
 "cmdline": "$(cat /proc/cmdline)", "cpus": $(nproc)}
FACTS
export PODWIRE_IN_VM=1
set -f   # node ids such as test_x[daemon-sctp-only] are not globs
for driver in $VM_PASSES; do
  suite_var="VM_SUITE_$driver"
  echo "vm: pass $driver: ${!suite_var}"
  # shellcheck disable=SC2086
  PODWIRE_TEST_CGROUP_DRIVER=$driver "$VM_VENV/bin/python" -m pytest ${!suite_var} -p no:cacheprovider -q -rs \
    $VM_PYTEST_ARGS --junitxml="$out/junit-$driver.xml" 2>&1 | tee "$out/pytest-$driver.log"
  echo "${PIPESTATUS[0]}" > "$out/rc-$driver"
  sync
done
journalctl -b --no-pager > "$out/journal.log" 2>&1
sync
exit 0
}
