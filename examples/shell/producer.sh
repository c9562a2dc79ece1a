#!/bin/sh
# producer.sh MOUNT QUEUE [COUNT] - pushes COUNT messages (default 10),
# each an ordinary file write: the push is done when the redirection closes.
# Every fifth one is urgent: written as a draft, given a priority, renamed.
set -eu
q=$1/$2
n=${3:-10}
[ -d "$q" ] || mkdir "$q"

i=1
while [ "$i" -le "$n" ]; do
	if [ $((i % 5)) -eq 0 ]; then
		printf 'urgent job %d\n' "$i" > "$q/.job-$i"
		setfattr -n user.spool.priority -v 5 "$q/.job-$i"
		mv "$q/.job-$i" "$q/job-$i"
	else
		printf 'job %d\n' "$i" > "$q/job-$i"
	fi
	i=$((i + 1))
done
echo "pushed $n messages to $q"
