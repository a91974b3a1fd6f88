#!/bin/sh
# PID 1 of the emulated KVM host after switch_root, in the host's own userland (read-only over 9p):
# runs the engine's conformance tests on the kvm tier, with AVA's output in the share's ava.log
# (run.sh streams it to the terminal), writes AVA's exit status to the share and powers off.
share=/run/vespid-kvm-emulated
. "$share/job.env"
log=$share/ava.log
say() { echo "kvm-emulated (VM): $*" >>"$log"; }
finish() {
  echo "$1" >"$share/status"
  sync
  busybox poweroff -f
  echo o >/proc/sysrq-trigger
  sleep 10
}

mkdir -p /dev/shm
for d in /tmp /var/tmp /dev/shm; do mount -t tmpfs -o mode=1777 vespid-tmp "$d"; done
mkdir -p /dev/pts && mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
export HOME=/tmp/home PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb
mkdir -p "$HOME"
cd "$VESPID_CHECKOUT" || { say "error: no checkout at $VESPID_CHECKOUT"; finish 1; }
# AVA keeps a cache under node_modules/.cache, which is read-only here.
[ -d node_modules/.cache ] && mount -t tmpfs vespid-cache node_modules/.cache

say "running the kvm tier's tests: ava --match '$VESPID_TEST_MATCH' $VESPID_TEST_FILES"
start=$(date +%s)
# No time limit here: guest time counts instructions (qemu -icount), so run.sh bounds the run in
# host time instead, and AVA's own per-test timeouts end a test that hangs.
# shellcheck disable=SC2086 # the file list is split on purpose
node_modules/.bin/ava --concurrency=1 --match "$VESPID_TEST_MATCH" $VESPID_TEST_FILES >>"$log" 2>&1
st=$?
say "the tests ended with status $st after $(($(date +%s) - start)) s of guest time"
finish "$st"
