#!/usr/bin/env bash
# Tests of services.sh itself: whatever happens to a start, `stop` leaves no
# process and no listening port behind.
#
#   scripts/services_test.sh        (run by `make test`; takes about a minute)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
SVC=$HERE/services.sh

ROOT=$(mktemp -d "${TMPDIR:-/tmp}/gopush-svctest.XXXXXX")
FAILED=0
trap '"$SVC" stop "$ROOT/a" >/dev/null 2>&1; "$SVC" stop "$ROOT/b" >/dev/null 2>&1; "$SVC" stop "$ROOT/c" >/dev/null 2>&1; "$SVC" stop "$ROOT/d" >/dev/null 2>&1; rm -rf "$ROOT"' EXIT

fail() { log "FAIL: $*"; FAILED=1; }
pass() { log "ok:   $*"; }

# snapshot DIR: remember the processes and ports that DIR's services use.
snapshot() {
	local f
	PIDS=()
	for f in "$1"/*.pid; do
		[ -e "$f" ] && PIDS+=("$(cat "$f")")
	done
	PORTS=()
	for f in "$1"/*/port; do
		[ -e "$f" ] && PORTS+=("$(cat "$f")")
	done
}

# leftovers DIR: print every process and port of DIR's services still there.
leftovers() {
	local dir=$1 entry pid start p c line
	for entry in "${PIDS[@]}"; do
		read -r pid start <<<"$entry"
		[ "$(proc_start "$pid")" = "$start" ] && echo "process $pid still runs"
		pgrep -g "$pid" >/dev/null 2>&1 && echo "process group $pid still has processes"
	done
	for c in /proc/[0-9]*/cmdline; do
		line=$({ tr '\0' ' ' <"$c"; } 2>/dev/null) || continue
		if [[ $line == *"$dir/"* ]]; then
			p=${c#/proc/}
			echo "process ${p%/cmdline} still runs: $line"
		fi
	done
	for p in "${PORTS[@]}"; do
		port_busy "$p" && echo "port $p still listens"
	done
	return 0
}

check_clean() {
	local name=$1 dir=$2 left
	left=$(leftovers "$dir")
	if [ -n "$left" ]; then fail "$name: $left"; else pass "$name: nothing left behind"; fi
}

env_ok() {
	local dir=$1
	[ -s "$dir/env" ] || return 1
	(
		# shellcheck disable=SC1091
		. "$dir/env"
		[ -n "${GOPUSH_TEST_ZK:-}" ] && [ -n "${GOPUSH_TEST_REDIS:-}" ] && [ -n "${GOPUSH_TEST_MYSQL:-}" ] &&
			port_busy "${GOPUSH_TEST_ZK##*:}" && port_busy "${GOPUSH_TEST_REDIS##*:}"
	)
}

# 1. start and stop, twice in a row, in the same directory.
for round in 1 2; do
	if ! "$SVC" start "$ROOT/a" 2>"$ROOT/a.log"; then
		fail "start round $round: $(tail -5 "$ROOT/a.log")"
		continue
	fi
	env_ok "$ROOT/a" && pass "start round $round wrote env with live services" ||
		fail "start round $round: env missing or services not listening"
	snapshot "$ROOT/a"
	[ ${#PIDS[@]} = 3 ] || fail "start round $round: expected 3 pid files, found ${#PIDS[@]}"
	if "$SVC" start "$ROOT/a" 2>/dev/null; then
		fail "a second start on a running DIR succeeded"
	else
		pass "a second start on a running DIR is refused"
	fi
	"$SVC" stop "$ROOT/a" 2>>"$ROOT/a.log" || fail "stop round $round failed"
	check_clean "start+stop round $round" "$ROOT/a"
done

# 2. start killed outright (SIGKILL) while mariadb-install-db runs, then stop.
"$SVC" start "$ROOT/b" 2>"$ROOT/b.log" &
script=$!
wait_for 120 "mariadb-install-db" test -e "$ROOT/b/mysql-install.pid" || fail "start never reached mariadb-install-db"
kill -KILL "$script" 2>/dev/null
wait "$script" 2>/dev/null
snapshot "$ROOT/b"
[ ${#PIDS[@]} -ge 2 ] || fail "expected ZooKeeper and Redis to run when killed, found ${#PIDS[@]} pid files"
"$SVC" stop "$ROOT/b" 2>>"$ROOT/b.log" || fail "stop after SIGKILL failed"
check_clean "start killed with SIGKILL, then stop" "$ROOT/b"

# 3. start interrupted (SIGTERM, as Ctrl-C or a timeout would) half-way: it
#    stops what it started by itself.
"$SVC" start "$ROOT/c" 2>"$ROOT/c.log" &
script=$!
wait_for 120 "Redis pid file" test -e "$ROOT/c/redis.pid" || fail "start never reached Redis"
snapshot "$ROOT/c"
kill -TERM "$script"
wait "$script"
rc=$?
[ $rc = 130 ] && pass "interrupted start exits with 130" || fail "interrupted start exited with $rc, want 130"
snapshot "$ROOT/c"  # what is still recorded (should be nothing)
[ ${#PIDS[@]} = 0 ] || fail "interrupted start left pid files: ${PIDS[*]}"
check_clean "start interrupted with SIGTERM" "$ROOT/c"
"$SVC" stop "$ROOT/c" 2>>"$ROOT/c.log" || fail "stop after an interrupted start failed"

# 4. the replicated services: a ZooKeeper ensemble whose three servers
#    serve, a Redis primary with its replica and three Sentinels that name
#    the primary; stop leaves nothing behind.
if "$SVC" start "$ROOT/d" zk3 sentinel 2>"$ROOT/d.log"; then
	(
		# shellcheck disable=SC1091
		. "$ROOT/d/env"
		[ -n "${GOPUSH_TEST_ZK_ENSEMBLE:-}" ] || exit 1
		IFS=, read -r -a zks <<<"$GOPUSH_TEST_ZK_ENSEMBLE"
		[ ${#zks[@]} = 3 ] || exit 1
		for a in "${zks[@]}"; do port_busy "${a##*:}" || exit 1; done
		s=${GOPUSH_TEST_SENTINEL#sentinel@}
		s=${s%%,*}
		primary=$(cat "$ROOT/d/redis-primary/port")
		answer=$(timeout 5 redis-cli -h 127.0.0.1 -p "${s##*:}" SENTINEL get-master-addr-by-name gopush)
		[[ $answer == *"$primary"* ]]
	) && pass "zk3 sentinel: ensemble and Sentinels answer" || fail "zk3 sentinel: env or services wrong"
	snapshot "$ROOT/d"
	[ ${#PIDS[@]} = 8 ] || fail "zk3 sentinel: expected 8 pid files, found ${#PIDS[@]}"
	"$SVC" stop "$ROOT/d" 2>>"$ROOT/d.log" || fail "stop of zk3 sentinel failed"
	check_clean "zk3 sentinel start+stop" "$ROOT/d"
else
	fail "start zk3 sentinel: $(tail -5 "$ROOT/d.log")"
fi

if [ $FAILED != 0 ]; then
	for f in "$ROOT"/*.log; do log "--- $f"; cat "$f" >&2; done
	log "services_test: FAIL"
	exit 1
fi
log "services_test: PASS"
