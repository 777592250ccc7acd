#!/usr/bin/env bash
# move-rooms-db.sh HOST:PORT [PASSWORD]: move the rooms and the public
# messages that gopush versions before redis.roomdb kept in database 0 (next
# to the subscriber keys) into database redis.roomdb (docs/security.md).
# Run it on every Redis shard while the message daemons are stopped, before
# starting the new ones. Keys already in the target database are left
# alone (and named). Settings come from the environment, with the defaults
# of conf/message.toml:
#
#   ROOM_PREFIX=gopush:room:  PUBLIC_KEY=gopush:public  ROOM_DB=1
set -euo pipefail
addr=${1:?usage: move-rooms-db.sh HOST:PORT [PASSWORD]}
host=${addr%:*}
port=${addr##*:}
prefix=${ROOM_PREFIX:-gopush:room:}
public=${PUBLIC_KEY:-gopush:public}
db=${ROOM_DB:-1}
cli=(redis-cli --no-auth-warning -h "$host" -p "$port")
[ -n "${2:-}" ] && cli+=(-a "$2")

# move KEY WANTTYPE: MOVE KEY to $db when it has type WANTTYPE.
moved=0
move() {
	local t
	t=$("${cli[@]}" -n 0 TYPE "$1")
	[ "$t" = "$2" ] || return 0
	if [ "$("${cli[@]}" -n 0 MOVE "$1" "$db")" = 1 ]; then
		moved=$((moved + 1))
	else
		echo "move-rooms-db.sh: $1 already exists in database $db; left in database 0" >&2
	fi
}

# Rooms are sets; a subscriber key with the same prefix is a sorted set and
# stays.
while IFS= read -r key; do
	[ -n "$key" ] && move "$key" set
done < <("${cli[@]}" -n 0 --scan --pattern "${prefix//[*?\[]/\\&}*")
move "$public" zset
echo "move-rooms-db.sh: $addr: $moved keys moved to database $db"
