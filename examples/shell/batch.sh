#!/bin/sh
# batch.sh MOUNT QUEUE OUTFILE [MAX] - a cron-style batch job: leases what
# is waiting (up to MAX, default 1000), appends the bodies to OUTFILE in one
# go, and acks them only once OUTFILE is safely written. If the job dies
# half-way, the leases run out and the next run gets the messages again.
#   */5 * * * *  /usr/local/share/spoolfs/batch.sh /srv/spool events /var/log/events.log
set -eu
q=$1/$2
out=$3
max=${4:-1000}
tmp=$(mktemp)
ids=$(mktemp)
trap 'rm -f "$tmp" "$ids"' EXIT

n=0
# receive_wait applies to claim; --wait-free reading: a short timeout.
while [ "$n" -lt "$max" ] && id=$(timeout 1 cat "$q/claim") && [ -n "$id" ]; do
	cat "$q/leased/$id" >> "$tmp"
	echo "$id" >> "$ids"
	n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "batch: nothing to do"; exit 0; }
cat "$tmp" >> "$out"
sync "$out"
while read -r id; do
	rm "$q/leased/$id"
done < "$ids"
echo "batch: $n messages appended to $out"
