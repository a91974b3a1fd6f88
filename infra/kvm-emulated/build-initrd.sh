#!/usr/bin/env bash
# Packs the emulated KVM host's initrd: a static busybox, ./init and the kernel's modules from
# modules.list (in that order), as a gzipped newc cpio. Rebuilt only when one of them changed.
#
#   infra/kvm-emulated/build-initrd.sh KERNEL_DIR OUT     KERNEL_DIR as printed by fetch-kernel.sh
set -euo pipefail
(($# == 2)) || { echo "usage: $0 KERNEL_DIR OUT" >&2; exit 2; }
here=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
kdir=$1 out=$2
busybox=/bin/busybox # busybox-static's; the initrd has no libc for a dynamic one
die() { echo "kvm-emulated: error: $*" >&2; exit 1; }

[[ -x $busybox ]] || die "$busybox is missing (apt-get install busybox-static)"
if [[ -e $out ]]; then
  fresh=true
  for f in "$busybox" "$here/init" "$here/modules.list" "$kdir/complete"; do
    [[ $f -nt $out ]] && fresh=false
  done
  $fresh && exit 0
fi
echo "kvm-emulated: building the initrd (busybox, init, $(grep -cvE '^(#|$)' "$here/modules.list") modules)…" >&2
tmp=$(mktemp -d)
# shellcheck disable=SC2064 # expand $tmp now
trap "rm -rf '$tmp'" EXIT
mkdir -p "$tmp"/{bin,dev,proc,sys,modules}
cp "$busybox" "$tmp/bin/busybox"
install -m 0755 "$here/init" "$tmp/init"
grep -vE '^(#|$)' "$here/modules.list" >"$tmp/modules.list"
while read -r m; do
  cp "$kdir/modules/$m.ko" "$tmp/modules/" || die "module $m is not in $kdir (fetch-kernel.sh takes every module in modules.list)"
done <"$tmp/modules.list"
(cd "$tmp" && find . -print0 | cpio --quiet --null -o -H newc --owner=0:0) | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
