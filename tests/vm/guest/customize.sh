#!/bin/sh
# mmdebstrap customize hook, run on the build host: $1 is the guest's root, $2 its venv path.
set -eu
root=$1 venv=$2
# The project's Python dependencies, from wheels the host built: the guest has no network, and
# keeps the wheels (/opt/podwire/wheels) for what installs podwire inside it (make install).
chroot "$root" python3 -m venv --system-site-packages "$venv"   # system site: bcc's python3-bpfcc
chroot "$root" sh -c "$venv/bin/pip install -q --no-index --no-cache-dir /opt/podwire/wheels/*.whl"
echo "/dev/vda / ext4 rw,noatime 0 1" > "$root/etc/fstab"
echo podwire-vm > "$root/etc/hostname"
# The suite runs as soon as the system is up, then powers the VM off.
ln -sf /etc/systemd/system/podwire-vm-test.service "$root/etc/systemd/system/multi-user.target.wants/podwire-vm-test.service"
# Nothing a test VM needs that costs boot time under emulation.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer \
            getty@tty1.service serial-getty@ttyS0.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# No network in the guest: the tests use loopback and namespaces they make.
