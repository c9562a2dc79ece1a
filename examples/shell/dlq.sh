#!/bin/sh
# dlq.sh MOUNT QUEUE [--redrive [N]] - inspects QUEUE's dead-letter queue
# (config key dead_letter, by default QUEUE.dead): one line per message
# with its id, receive count, original name, when it was sent and the start
# of its body. --redrive moves them (or N of them) back into QUEUE.
set -eu
mnt=$1
queue=$2
dead=$(sed -n 's/^dead_letter=//p' "$mnt/$queue/config")
d=$mnt/$dead
if [ ! -d "$d" ]; then
	echo "dlq: $dead: no dead letters"
	exit 0
fi

if [ "${3:-}" = --redrive ]; then
	echo "move $queue ${4:-}" > "$d/ctl"
	echo "dlq: redrove ${4:-all} messages from $dead to $queue"
	exit 0
fi

count=0
for f in "$d"/peek/*; do
	[ -e "$f" ] || continue
	id=${f##*/}
	get() { getfattr -n "user.spool.$1" --only-values "$f" 2>/dev/null; }
	sent=$(get sent)
	printf '%s receives=%s name=%s sent=%s body=%s\n' "$id" "$(get receives)" \
		"$(get name)" "$(date -u -d "@$((sent / 1000))" +%FT%TZ)" \
		"$(head -c 40 "$f" | tr '\n' ' ')"
	count=$((count + 1))
done
echo "dlq: $count messages in $dead"
