#!/usr/bin/env bash
# `npm run test:kvm-emulated`: the engine's KVM conformance tests with real SVM semantics on a
# machine without /dev/kvm (or with a KVM that is not SVM/VMX, such as kvm_pvm). Boots a QEMU TCG
# VM (-cpu max emulates AMD SVM) on Debian's linux-image-amd64 kernel, whose kvm-amd module makes
# /dev/kvm inside; the VM sees this machine's / read-only over 9p, switch_roots into it and runs
# the kvm tier's tests of this checkout with the node, compilers and engine built here. Slow (the
# whole VM is emulated): use it for correctness, never for timing. No network in the VM.
#
# Root (qemu reads the whole / through 9p as the user running it; apt when something is missing).
# Everything it keeps is under $VESPID_DATA_DIR/kvm-emulated (default .vespid/kvm-emulated).
# Environment:
#   VESPID_KVM_EMULATED_TIMEOUT   seconds the VM may run, boot included (default 600); AVA's
#                                 output so far is on the terminal already if it is cut
#   VESPID_KVM_EMULATED_FILES     test files to run (default: the engine's conformance files)
#   VESPID_STATE_FUZZ_SEEDS       attack calls of the state fuzz test in the VM (default 100)
#   VESPID_KVM_EMULATED_MATCH     AVA --match pattern for the titles (default 'kvm › *': the kvm
#                                 tier's tests, which engine-tiers.ts titles "kvm › …")
# Exit status: the tests' (AVA's) inside the VM; 1 when the VM never got to report one.
set -euo pipefail
here=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
checkout=$(realpath "$here/../..")
cd "$checkout"

limit=${VESPID_KVM_EMULATED_TIMEOUT:-600}
files=${VESPID_KVM_EMULATED_FILES:-test/engine.test.ts test/engine-hostile.test.ts test/engine-state-fuzz.test.ts}
match=${VESPID_KVM_EMULATED_MATCH:-kvm › *}
data=$(realpath -m "${VESPID_DATA_DIR:-.vespid}")/kvm-emulated
export DEBIAN_FRONTEND=noninteractive

say() { echo "kvm-emulated: $*" >&2; }
die() { echo "kvm-emulated: error: $*" >&2; exit 1; }

[[ $limit =~ ^[0-9]+$ ]] && ((limit >= 120)) ||
  die "VESPID_KVM_EMULATED_TIMEOUT must be a whole number of seconds ≥ 120, not '$limit'"
[[ $(id -u) == 0 ]] || die "needs root: qemu must read the whole / to share it with the VM"

apt_updated=false
need() { # need <command or absolute path> <Debian package>
  if [[ $1 == /* ]]; then [[ -e $1 ]] && return; else command -v "$1" >/dev/null && return; fi
  if ! $apt_updated; then
    say "updating apt's package lists…"
    apt-get update -qq >&2 || die "apt-get update failed"
    apt_updated=true
  fi
  say "installing $2 (apt-get install)…"
  apt-get install -y -qq --no-install-recommends "$2" >/dev/null || die "apt-get install $2 failed"
}
need qemu-system-x86_64 qemu-system-x86
need /bin/busybox busybox-static # static: the initrd has no libc; inner.sh's poweroff too
need cpio cpio
need gzip gzip

mkdir -p "$data"
kernel=$("$here/fetch-kernel.sh" "$data")
initrd=$data/initrd-$(basename "$kernel").cpio.gz
"$here/build-initrd.sh" "$kernel" "$initrd"
find "$data" -maxdepth 1 -name 'initrd-*.cpio.gz' ! -name "$(basename "$initrd")" -delete

# The share the VM writes to: the job, AVA's output, the status. Fresh for every run.
share=$data/share
rm -rf "$share"
mkdir -p "$share"
quote() { # a value for job.env, sourced by busybox sh and dash: single quotes, none inside
  [[ $1 != *\'* ]] || die "cannot pass a value with a single quote to the VM: $1"
  printf "'%s'" "$1"
}
{
  echo "VESPID_CHECKOUT=$(quote "$checkout")"
  echo "VESPID_TEST_FILES=$(quote "$files")"
  echo "VESPID_TEST_MATCH=$(quote "$match")"
  echo "export CI=$(quote "${CI:-}") VESPID_LOG_LEVEL=$(quote "${VESPID_LOG_LEVEL:-}")"
  # fewer seeds for the state fuzz test (test/engine-state-fuzz.test.ts): every call is emulated
  echo "export VESPID_STATE_FUZZ_SEEDS=$(quote "${VESPID_STATE_FUZZ_SEEDS:-100}")"
} >"$share/job.env"
: >"$share/ava.log"
console=$data/console.log

say "booting the VM ($(basename "$kernel"), TCG with emulated SVM; the whole run is limited to ${limit} s)…"
start=$SECONDS
qemu=(
  qemu-system-x86_64 -machine q35,accel=tcg -cpu max -m 3072 -smp 1
  # Guest time counts instructions (1 ns each), not host time: a busy or shared host slows the run
  # down but cannot make a guest miss its time limit, so the tests' deadlines hold as on hardware.
  -icount shift=0
  -nodefaults -display none -no-reboot # no network, no VGA; a panic or poweroff ends qemu
  -serial "file:$console"
  -kernel "$kernel/vmlinuz" -initrd "$initrd"
  -append "console=ttyS0 quiet loglevel=3 panic=1 rdinit=/init"
  -virtfs "local,path=/,mount_tag=vespid-root,security_model=none,readonly=on,multidevs=remap"
  -virtfs "local,path=$share,mount_tag=vespid-share,security_model=none,multidevs=remap"
)
timeout -k 10 "$limit" "${qemu[@]}" &
qpid=$!
# AVA's output, as the VM writes it; tail stops once qemu has ended (after a last read).
tail -n +1 -F --pid="$qpid" "$share/ava.log" 2>/dev/null &
tpid=$!
qst=0
wait "$qpid" || qst=$?
wait "$tpid" || true
elapsed=$((SECONDS - start))

if [[ -s $share/status ]]; then
  st=$(<"$share/status")
  [[ -s $share/error ]] && say "error in the VM: $(<"$share/error") (console: $console)"
  say "the VM ran for ${elapsed} s; the tests' status: $st"
  exit "$st"
fi
if ((qst == 124 || qst == 137)); then
  say "error: the VM did not finish within ${limit} s and was stopped (VESPID_KVM_EMULATED_TIMEOUT); its console:"
else
  say "error: the VM ended (qemu status $qst) after ${elapsed} s without reporting a test status; its console:"
fi
tail -n 40 "$console" | tr -d '\r' >&2
exit 1
