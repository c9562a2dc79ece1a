#!/bin/sh
# redis-run.sh PROGRAM [ARGS...] - runs PROGRAM against a Redis server of
# its own: redis-server on a free loopback port with its own temporary
# directory (AOF on, fsync always, as --sync always needs), the store's URL
# in SPOOL_TEST_STORE (redis://127.0.0.1:PORT/PREFIX) and SPOOL_REDIS_URL,
# its port and pid in SPOOL_REDIS_PORT and SPOOL_REDIS_PID;
# the server is stopped by its pid afterwards. PROGRAM's exit status is
# this script's. A missing redis-server fails (exit 1): never a skip.
set -u
command -v redis-server >/dev/null 2>&1 || {
	echo "redis-run.sh: redis-server is missing (package redis-server)" >&2
	exit 1
}
dir=$(mktemp -d "${TMPDIR:-/tmp}/spool-redis-XXXXXX") || exit 1
port=$(/usr/bin/python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' \
	--appendonly yes --appendfsync "${SPOOL_REDIS_FSYNC:-always}" \
	--maxmemory-policy noeviction --logfile "$dir/redis.log" \
	--daemonize no &
pid=$!
stop() {
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM
i=0
until redis-cli -p "$port" ping >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "redis-run.sh: redis-server did not start on port $port" >&2
		cat "$dir/redis.log" >&2
		exit 1
	fi
	sleep 0.05
done
SPOOL_TEST_STORE="redis://127.0.0.1:$port/t$$"
SPOOL_REDIS_URL="redis://127.0.0.1:$port"
SPOOL_REDIS_PORT=$port
SPOOL_REDIS_PID=$pid
export SPOOL_TEST_STORE SPOOL_REDIS_URL SPOOL_REDIS_PORT SPOOL_REDIS_PID
"$@"
