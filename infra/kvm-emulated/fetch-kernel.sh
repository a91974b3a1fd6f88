#!/usr/bin/env bash
# Takes Debian's current linux-image-amd64 kernel and the few modules the emulated KVM host needs
# out of the package, without installing it (apt-get download + dpkg-deb -x): this machine's own
# kernel and /boot stay untouched. Idempotent: a kernel already unpacked is reused, and if apt
# cannot be asked (offline), the newest one unpacked before is.
#
#   infra/kvm-emulated/fetch-kernel.sh DIR     prints DIR/kernel/<version>, holding vmlinuz and
#                                              modules/<name>.ko for every name in modules.list
set -euo pipefail
(($# == 1)) || { echo "usage: $0 DIR" >&2; exit 2; }
here=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
out=$1/kernel
say() { echo "kvm-emulated: $*" >&2; }
die() { echo "kvm-emulated: error: $*" >&2; exit 1; }

# The versioned package the metapackage points to now, e.g. linux-image-6.1.0-56-amd64.
current_package() {
  apt-cache depends linux-image-amd64 2>/dev/null | sed -nE 's/^[[:space:]]*Depends:[[:space:]]*(linux-image-[^[:space:]]+)$/\1/p' | head -n 1
}
pkg=$(current_package)
if [[ -z $pkg && $(id -u) == 0 ]]; then
  say "updating apt's package lists…"
  apt-get update -qq >&2 || true
  pkg=$(current_package)
fi
if [[ -z $pkg ]]; then
  # shellcheck disable=SC2012 # names are linux-image-style versions, no odd characters
  last=$(ls -1d "$out"/*/ 2>/dev/null | sort -V | tail -n 1)
  [[ -n $last && -e $last/vmlinuz ]] || die "apt does not know linux-image-amd64 (run apt-get update as root) and no kernel was fetched before"
  say "apt does not know linux-image-amd64; using the kernel fetched before"
  echo "${last%/}"
  exit 0
fi
version=${pkg#linux-image-}
dir=$out/$version
if [[ -e $dir/complete ]]; then
  echo "$dir"
  exit 0
fi

say "downloading ${pkg} (about 70 MB, not installed)…"
tmp=$(mktemp -d)
# shellcheck disable=SC2064 # expand $tmp now
trap "rm -rf '$tmp'" EXIT
# As root, apt hands downloads to the _apt user, which cannot write into a private temp dir.
(cd "$tmp" && apt-get -qq -o APT::Sandbox::User=root download "$pkg" >&2) || die "apt-get download $pkg failed"
deb=$(find "$tmp" -maxdepth 1 -name "${pkg}_*.deb" | head -n 1)
[[ -n $deb ]] || die "apt-get download did not produce a ${pkg} package"
dpkg-deb -x "$deb" "$tmp/root" || die "dpkg-deb could not unpack $deb"

rm -rf "$dir"
mkdir -p "$dir/modules"
cp "$tmp/root/boot/vmlinuz-$version" "$dir/vmlinuz" || die "$pkg has no /boot/vmlinuz-$version"
while read -r name; do
  [[ -z $name || $name == \#* ]] && continue
  ko=$(find "$tmp/root/lib/modules/$version/kernel" -name "$name.ko" -o -name "$name.ko.xz" | head -n 1)
  [[ -n $ko ]] || die "$pkg has no module $name"
  case $ko in
  *.xz) xz -dc "$ko" >"$dir/modules/$name.ko" ;; # busybox insmod takes plain modules only
  *) cp "$ko" "$dir/modules/$name.ko" ;;
  esac
done <"$here/modules.list"
touch "$dir/complete"
# Kernels Debian has since replaced are of no further use (run.sh drops their initrds too).
find "$out" -mindepth 1 -maxdepth 1 -type d ! -name "$version" -exec rm -rf {} +
echo "$dir"
