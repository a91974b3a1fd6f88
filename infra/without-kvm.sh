#!/usr/bin/env bash
# Runs a command as on a machine without /dev/kvm: in a private mount namespace whose /dev is a
# fresh tmpfs holding only the usual character devices. Nothing outside the command changes. Root
# only (it mounts). Used by .ci/run to test the process tier on machines that do have KVM:
#   infra/without-kvm.sh npm test
set -euo pipefail
(($# > 0)) || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "$0: needs root (it mounts a private /dev)" >&2; exit 2; }

if [[ ${VESPID_WITHOUT_KVM_INNER:-} != 1 ]]; then
  exec env VESPID_WITHOUT_KVM_INNER=1 unshare --mount --propagation private "$0" "$@"
fi
# Inside the new mount namespace: keep the real devices reachable for the bind mounts below.
host_dev=$(mktemp -d)
mount --bind /dev "$host_dev"
mount -t tmpfs -o mode=0755 vespid-dev /dev
for d in null zero full random urandom tty; do
  touch "/dev/$d"
  mount --bind "$host_dev/$d" "/dev/$d"
done
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777 vespid-shm /dev/shm
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
umount "$host_dev" && rmdir "$host_dev"
unset VESPID_WITHOUT_KVM_INNER
exec "$@"
