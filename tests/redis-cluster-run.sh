#!/bin/sh
# redis-cluster-run.sh PROGRAM [ARGS...] - runs PROGRAM against a Redis
# Cluster of its own: three primaries (no replicas), each a redis-server
# with --cluster-enabled yes on a free loopback port and its own temporary
# directory (AOF on, fsync always, noeviction), joined with
# `redis-cli --cluster create`. PROGRAM gets the nodes in
# SPOOL_CLUSTER_NODES (127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3), their ports
# in SPOOL_CLUSTER_PORTS and pids in SPOOL_CLUSTER_PIDS (space-separated),
# and the store's URL in SPOOL_TEST_STORE
# (redis+cluster://127.0.0.1:P1,.../PREFIX), as the contract suites take it.
# The servers are stopped by their pids afterwards; PROGRAM's exit status
# is this script's. A missing redis-server or redis-cli fails (exit 1):
# never a skip.
set -u
for p in redis-server redis-cli; do
	command -v $p >/dev/null 2>&1 || {
		echo "redis-cluster-run.sh: $p is missing (package" \
		     "redis-server / redis-tools)" >&2
		exit 1
	}
done
dir=$(mktemp -d "${TMPDIR:-/tmp}/spool-cluster-XXXXXX") || exit 1
pids=
stop() {
	for pid in $pids; do
		kill "$pid" 2>/dev/null
	done
	for pid in $pids; do
		wait "$pid" 2>/dev/null
	done
	rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM
# Three free ports whose cluster bus ports (port + 10000) are free too.
ports=$(/usr/bin/python3 -c 'import socket
got, socks = [], []
while len(got) < 3:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    socks.append(s)
    if p + 10000 > 65535:
        continue
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 10000))
    except OSError:
        continue
    socks.append(b)
    got.append(p)
print(" ".join(map(str, got)))')
nodes=
for port in $ports; do
	mkdir -p "$dir/$port"
	redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/$port" \
		--save '' --appendonly yes --appendfsync always \
		--maxmemory-policy noeviction --cluster-enabled yes \
		--cluster-config-file "$dir/$port/nodes.conf" \
		--cluster-node-timeout 5000 --logfile "$dir/$port/redis.log" \
		--daemonize no &
	pids="$pids $!"
	nodes="$nodes 127.0.0.1:$port"
done
for port in $ports; do
	i=0
	until redis-cli -p "$port" ping >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt 100 ]; then
			echo "redis-cluster-run.sh: redis-server did not start" \
			     "on port $port" >&2
			cat "$dir/$port/redis.log" >&2
			exit 1
		fi
		sleep 0.05
	done
done
# shellcheck disable=SC2086
if ! redis-cli --cluster create $nodes --cluster-replicas 0 \
	--cluster-yes >"$dir/create.log" 2>&1; then
	echo "redis-cluster-run.sh: redis-cli --cluster create failed:" >&2
	cat "$dir/create.log" >&2
	exit 1
fi
# Every node must see the cluster as ok (the gossip takes a moment).
for port in $ports; do
	i=0
	until redis-cli -p "$port" cluster info 2>/dev/null |
	      grep -q '^cluster_state:ok'; do
		i=$((i + 1))
		if [ $i -gt 200 ]; then
			echo "redis-cluster-run.sh: the cluster is not ok on" \
			     "port $port" >&2
			redis-cli -p "$port" cluster info >&2
			exit 1
		fi
		sleep 0.05
	done
done
SPOOL_CLUSTER_NODES=$(echo $nodes | tr ' ' ',')
SPOOL_CLUSTER_PORTS=$(echo $ports)
SPOOL_CLUSTER_PIDS=$(echo $pids)
SPOOL_TEST_STORE="redis+cluster://$SPOOL_CLUSTER_NODES/t$$"
export SPOOL_CLUSTER_NODES SPOOL_CLUSTER_PORTS SPOOL_CLUSTER_PIDS \
	SPOOL_TEST_STORE
"$@"
