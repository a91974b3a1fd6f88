#!/usr/bin/env bash
# Makes this checkout runnable: Node packages, the C toolchain for guest images, libseccomp, a
# nats-server ≥ 2.10 and the native engine. Idempotent; prints nothing when everything is already
# there, and one line before each slow step otherwise.
# Meant for a Debian bookworm-like machine, run as root (apt) when something is missing.
#
#   infra/setup.sh                 what running needs (`make -C native runtime`)
#   infra/setup.sh --native all    also the engine's test builds (ASan vsp-run, tools): `npm test`
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

NATIVE_TARGET=runtime
while (($#)); do
  case $1 in
  --native) (($# >= 2)) || { echo "setup: error: --native needs a make target (runtime or all)" >&2; exit 2; }
    NATIVE_TARGET=$2; shift 2 ;;
  --native=*) NATIVE_TARGET=${1#--native=}; shift ;;
  *) echo "setup: error: unknown argument '$1' (usage: infra/setup.sh [--native runtime|all])" >&2; exit 2 ;;
  esac
done
case $NATIVE_TARGET in
runtime | all) ;;
*) echo "setup: error: --native must be runtime or all, not '$NATIVE_TARGET'" >&2; exit 2 ;;
esac
DATA_DIR=$(realpath -m "${VESPID_DATA_DIR:-.vespid}")
MIN_NODE_MAJOR=20
# 2.9 loses pull requests under redelivery (see README); 2.10 is the first good release.
MIN_NATS_VERSION=2.10.0
# Debian bookworm ships nats-server 2.9; trixie's package is static and runs on bookworm.
NATS_SUITE=trixie
export DEBIAN_FRONTEND=noninteractive

say() { echo "setup: $*" >&2; }
die() { echo "setup: error: $*" >&2; exit 1; }

# --- Node ---------------------------------------------------------------------------------------
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null) ||
  die "node is not installed; Vespid needs Node ${MIN_NODE_MAJOR} or newer"
((node_major >= MIN_NODE_MAJOR)) ||
  die "node $(node --version) is too old; Vespid needs Node ${MIN_NODE_MAJOR} or newer"

# npm records what it installed in node_modules/.package-lock.json; a newer manifest means stale modules.
if [[ ! -d node_modules ]]; then
  say "installing Node packages (npm ci)…"
  # A fresh checkout: install exactly what the lock file says.
  npm ci --no-audit --no-fund --loglevel=error >/dev/null || die "npm ci failed" # errors still reach stderr
elif [[ package-lock.json -nt node_modules/.package-lock.json || package.json -nt node_modules/.package-lock.json ]]; then
  say "updating Node packages (npm install)…"
  npm install --no-audit --no-fund --loglevel=error >/dev/null || die "npm install failed"
fi

# --- Debian packages ----------------------------------------------------------------------------
apt_updated=false
apt_install() {
  [[ $(id -u) == 0 ]] || die "package $1 is missing; run this as root or install it: apt-get install $1"
  if ! $apt_updated; then
    say "updating apt's package lists…"
    apt-get update -qq >&2 || die "apt-get update failed"
    apt_updated=true
  fi
  say "installing $1 (apt-get install)…"
  apt-get install -y -qq "$1" >/dev/null || die "apt-get install $1 failed"
}

# need <command or absolute path> <Debian package providing it>
need() {
  if [[ $1 == /* ]]; then [[ -e $1 ]] && return; else command -v "$1" >/dev/null && return; fi
  apt_install "$2"
  if [[ $1 == /* ]]; then [[ -e $1 ]]; else command -v "$1" >/dev/null; fi ||
    die "$1 is still missing after installing $2"
}

need make make
need gcc gcc                        # the native engine; musl-gcc is a wrapper around it too
need /usr/include/stdio.h libc6-dev # the engine builds against glibc (gcc only recommends it)
need musl-gcc musl-tools            # guests are static musl programs
need bwrap bubblewrap               # C actions compile in a sandbox that cannot read host files
need /usr/include/seccomp.h libseccomp-dev # the process tier's seccomp filters are built with libseccomp
# The tests drive the web console in a real headless browser (test/console.test.ts, playwright-core),
# and run the README's walkthrough as written (test/readme.test.ts), which uses curl, jq and zip.
if [[ $NATIVE_TARGET == all ]]; then
  need chromium chromium
  need curl curl
  need jq jq
  need zip zip
fi

# --- nats-server --------------------------------------------------------------------------------
nats_version() { # prints the x.y.z of a nats-server binary, or nothing
  "$1" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1 || true
}
version_at_least() { # version_at_least HAVE MIN
  [[ -n $1 ]] && printf '%s\n%s\n' "$2" "$1" | sort -V -C
}

# The first Debian mirror this machine's own apt configuration uses, so no host name lives in the repo.
# Prints nothing when there is none.
debian_mirror() {
  local uris
  uris=$(
    cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -nE 's/^[[:space:]]*URIs:[[:space:]]*//p' | tr -s ' \t' '\n\n'
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed -nE 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p'
  ) || true
  awk '/^(https?|file):\/\/.*debian/ && !/security/ { print; exit }' <<<"$uris"
}

fetch_nats_server() {
  local uri tmp deb bin
  uri=$(debian_mirror)
  [[ -n $uri ]] || die "no Debian mirror found in /etc/apt (needed to fetch nats-server ≥ ${MIN_NATS_VERSION} from ${NATS_SUITE})"
  say "fetching nats-server from Debian ${NATS_SUITE} (${uri})…"
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064 # expand $tmp now
  trap "rm -rf '$tmp'" EXIT
  mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/root"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $NATS_SUITE main" >"$tmp/sources.list"
  # A private source list, list dir and cache: the system's apt configuration and state stay untouched.
  local apt_opts=(
    -o "Dir::Etc::SourceList=$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache"
    -o APT::Sandbox::User=root # the temp dir is private to root; no need to drop to _apt
  )
  apt-get "${apt_opts[@]}" -qq update >&2 || die "apt-get update for ${NATS_SUITE} failed"
  (cd "$tmp" && apt-get "${apt_opts[@]}" -qq download nats-server >&2) || die "apt-get download nats-server failed"
  deb=$(find "$tmp" -maxdepth 1 -name 'nats-server_*.deb' | head -n 1)
  [[ -n $deb ]] || die "apt-get download did not produce a nats-server package"
  dpkg-deb -x "$deb" "$tmp/root" || die "could not unpack $deb"
  bin=$(find "$tmp/root" -type f -name nats-server -perm -u+x | head -n 1)
  [[ -n $bin ]] || die "$deb contains no nats-server binary"
  mkdir -p "$DATA_DIR/bin"
  install -m 0755 "$bin" "$DATA_DIR/bin/nats-server"
}

if path_nats=$(command -v nats-server) && version_at_least "$(nats_version "$path_nats")" "$MIN_NATS_VERSION"; then
  : # the system's own nats-server is recent enough
elif version_at_least "$(nats_version "$DATA_DIR/bin/nats-server")" "$MIN_NATS_VERSION"; then
  : # fetched by an earlier run
else
  [[ $(id -u) == 0 ]] || die "nats-server ≥ ${MIN_NATS_VERSION} is missing; run this as root to fetch it from Debian ${NATS_SUITE}"
  fetch_nats_server
  got=$(nats_version "$DATA_DIR/bin/nats-server")
  version_at_least "$got" "$MIN_NATS_VERSION" ||
    die "the fetched nats-server (${got:-unknown version}) is older than ${MIN_NATS_VERSION}"
  say "nats-server ${got} installed in $DATA_DIR/bin"
fi

# --- native engine ------------------------------------------------------------------------------
# `runtime`: the engine library, the sandbox helper, the guest runtime and the JS image — what a
# runner needs. `all` adds what only tests and debugging use (the ASan/UBSan vsp-run, vsp-run).
if [[ -f native/Makefile ]]; then
  make_native=(make -s --no-print-directory -j "$(nproc)" -C native)
  # -q: exit 0 when the target is up to date, 1 when something must be built (2: make's own error,
  # which the real build below then reports).
  if ! "${make_native[@]}" -q "$NATIVE_TARGET" 2>/dev/null; then
    if [[ ! -e native/build/libvespid.so ]]; then
      what="building the native engine"
      [[ $NATIVE_TARGET == all ]] && what+=" with its ASan test build"
      say "${what} (first run only, about half a minute)…"
    elif [[ $NATIVE_TARGET == all ]] && "${make_native[@]}" -q runtime 2>/dev/null; then
      say "building the native engine's test builds (ASan vsp-run)…"
    else
      say "rebuilding the native engine (its sources changed)…"
    fi
    started=$SECONDS
    "${make_native[@]}" "$NATIVE_TARGET" >&2 || die "building native/ failed (make -C native $NATIVE_TARGET)"
    say "native engine built in $((SECONDS - started)) s"
  fi
fi

# Not an error: the runner falls back to the process tier and says so when it starts.
if [[ ! -e /dev/kvm ]]; then
  say "note: /dev/kvm is missing; functions will run in the process tier (see README, Isolation)"
elif [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
  say "note: /dev/kvm is not usable by $(id -un) ($(stat -c '%U:%G %A' /dev/kvm)); functions will run in the process tier (see README, Isolation)"
fi

chmod +x bin/vespid.ts .ci/run 2>/dev/null || true
