#!/bin/sh
# consumer.sh MOUNT QUEUE IDLE HANDLER [ARGS...] - the at-least-once worker
# loop: lease with claim, run HANDLER with the body on stdin, ack (rm) when
# it succeeds, release (mv to peek/) when it fails. Stops once the queue
# stayed empty for IDLE seconds (timeout interrupts the wait on claim and
# leases nothing); IDLE=0 waits forever.
set -u
q=$1/$2
idle=$3
shift 3

claim() {
	if [ "$idle" = 0 ]; then cat "$q/claim"; else timeout "$idle" cat "$q/claim"; fi
}

ok=0 failed=0
while id=$(claim) && [ -n "$id" ]; do
	if SPOOL_ID=$id "$@" < "$q/leased/$id"; then
		rm "$q/leased/$id" && ok=$((ok + 1))
	else
		mv "$q/leased/$id" "$q/peek/" && failed=$((failed + 1))
	fi
done
echo "consumer: $ok done, $failed released"
