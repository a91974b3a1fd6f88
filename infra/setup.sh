#!/usr/bin/env bash
# Makes this checkout runnable: Node packages, the C toolchain for guest images, a nats-server ≥ 2.10
# and the native engine. Idempotent; prints nothing when everything is already there.
# Meant for a Debian bookworm-like machine, run as root (apt) when something is missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
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
  say "installing Node packages"
  # A fresh checkout: install exactly what the lock file says.
  npm ci --no-audit --no-fund --loglevel=error >&2 || die "npm ci failed"
elif [[ package-lock.json -nt node_modules/.package-lock.json || package.json -nt node_modules/.package-lock.json ]]; then
  say "updating Node packages"
  npm install --no-audit --no-fund --loglevel=error >&2 || die "npm install failed"
fi

# --- Debian packages ----------------------------------------------------------------------------
apt_updated=false
apt_install() {
  [[ $(id -u) == 0 ]] || die "package $1 is missing; run this as root or install it: apt-get install $1"
  if ! $apt_updated; then
    apt-get update -qq >&2 || die "apt-get update failed"
    apt_updated=true
  fi
  say "installing $1"
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
  say "fetching nats-server from Debian ${NATS_SUITE} (${uri})"
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
if [[ -f native/Makefile ]]; then
  make -s --no-print-directory -C native >&2 || die "building native/ failed (make -C native)"
fi

[[ -e /dev/kvm ]] || say "warning: /dev/kvm is missing; functions cannot run on this machine"

chmod +x bin/vespid.ts .ci/run 2>/dev/null || true
