#!/usr/bin/env bash
# Starts (or stops) a 3-node nats-server cluster with JetStream on this machine's loopback, from
# infra/cluster/node-{1,2,3}.conf: clients on 4222-4224, routes on 6222-6224, each node's store
# under DATA_DIR/n<i>/jetstream and its log in DATA_DIR/n<i>.log. For trying replication and
# failover by hand; the tests start their own on free ports (infra/cluster/local-cluster.ts).
#
#   infra/cluster/start-local-cluster.sh [DATA_DIR]        start (default DATA_DIR: ./.vespid/cluster)
#   infra/cluster/start-local-cluster.sh stop [DATA_DIR]   stop all three (SIGTERM)
#
# Then: NATS_URL=nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224 and start the
# components (docs/deployment.md).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

action=start
if [[ ${1:-} == stop ]]; then action=stop; shift; fi
data=${1:-$repo/.vespid/cluster}
mkdir -p "$data"
data=$(cd "$data" && pwd)

if [[ $action == stop ]]; then
  for i in 1 2 3; do
    pidfile="$data/n$i.pid"
    if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then kill -TERM "$(cat "$pidfile")"; fi
    rm -f "$pidfile"
  done
  echo "stopped the cluster in $data"
  exit 0
fi

# The nats-server on PATH, else the one `npm run setup` fetched.
nats_server=$(command -v nats-server || true)
if [[ -z $nats_server ]]; then nats_server=$repo/.vespid/bin/nats-server; fi
if [[ ! -x $nats_server ]]; then
  echo "no nats-server: run \`npm run setup\` first" >&2
  exit 1
fi

for i in 1 2 3; do
  pidfile="$data/n$i.pid"
  if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "node n$i already runs (pid $(cat "$pidfile"))"
    continue
  fi
  # Working directory = DATA_DIR: the config's store_dir is relative to it.
  (cd "$data" && exec "$nats_server" -c "$here/node-$i.conf" -l "$data/n$i.log" -P "$data/n$i.pid") &
  disown
done

# Ready when every client port accepts connections.
for port in 4222 4223 4224; do
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
  done
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "node on port $port did not start; see $data/n*.log" >&2
    exit 1
  fi
done
echo "cluster up: NATS_URL=nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224 (data in $data)"
