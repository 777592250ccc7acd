#!/usr/bin/env bash
# The `make run` demo, end to end, in a private network namespace (so the
# fixed ports of conf/*.toml clash with nothing): start scripts/run.sh in the
# background, wait for its banner, run the demo steps it prints, stop it
# with Ctrl-C (SIGINT) and check that every process it started is gone.
#
#   makerun.sh ROOT     ROOT holds scripts/, conf/ and bin/ (comet, web, message)
#
# Prints "DEMO OK" at the end when every step worked; exits non-zero
# otherwise.
set -euo pipefail
ROOT=$1
cd "$ROOT"
ip link set lo up

HTTP=localhost:8090 ADMIN=localhost:8091
fail() {
	echo "FAIL: $*"
	for f in run/logs/*.log; do
		[ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }
	done
	echo "--- run.sh output"; cat run.out || true
	kill -INT -- "-$RUN_PID" 2>/dev/null || true
	wait "$RUN_PID" 2>/dev/null || true
	exit 1
}

# Job control on: run.sh gets its own process group, as in a terminal, and
# SIGINT is not ignored in it.
set -m
scripts/run.sh start > run.out 2>&1 &
RUN_PID=$!
set +m
for _ in $(seq 240); do
	grep -q "gopush is running" run.out && break
	kill -0 "$RUN_PID" 2>/dev/null || fail "run.sh exited before its banner"
	sleep 0.5
done
grep -q "gopush is running" run.out || fail "no banner after 120 s"
echo "banner seen"

# The pids of everything run.sh started, to check later that all are gone.
PIDS=$(cat run/*.pid run/services/*.pid 2>/dev/null | awk '{print $1}' | sort -u | tr '\n' ' ')
echo "pids: $PIDS"

# 1. which comet serves Terry-Mao over TCP
out=$(curl -s "http://$HTTP/1/server/get?k=Terry-Mao&p=2")
echo "server/get: $out"
[ "$out" = '{"ret":0,"data":{"server":"localhost:6969"}}' ] || fail "server/get answered $out"

# 2. subscribe with nc as the banner shows (client version 1.0: new form)
(printf '*5\r\n$3\r\nsub\r\n$9\r\nTerry-Mao\r\n$2\r\n30\r\n$0\r\n\r\n$3\r\n1.0\r\n'; sleep 20) | nc localhost 6969 > sub.out &
NC_PID=$!
for _ in $(seq 100); do grep -q '+h' sub.out && break; sleep 0.1; done
grep -q '+h' sub.out || fail "no +h from comet: $(cat sub.out)"

# 3. push to it, kept 600 s
out=$(curl -s -d '{"hello":"world"}' "http://$ADMIN/1/admin/push/private?key=Terry-Mao&expire=600")
echo "push: $out"
[ "$out" = '{"ret":0}' ] || fail "push answered $out"
for _ in $(seq 100); do grep -q '"hello":"world"' sub.out && break; sleep 0.1; done
grep -q '{"msg":{"hello":"world"},"mid":' sub.out || fail "the subscriber did not get the push: $(cat sub.out)"
echo "subscriber got: $(grep -a hello sub.out)"
kill "$NC_PID" 2>/dev/null || true
wait "$NC_PID" 2>/dev/null || true

# 4. fetch it again from the offline store
out=$(curl -s "http://$HTTP/1/msg/get?k=Terry-Mao&m=0")
echo "msg/get: $out"
case $out in
'{"ret":0,"data":{"msgs":[{"msg":{"hello":"world"},"mid":'*',"gid":0}]}}') ;;
*) fail "msg/get answered $out" ;;
esac

# 5. Ctrl-C (SIGINT to run.sh's process group, as a terminal sends it)
# stops everything.
kill -INT -- "-$RUN_PID"
for _ in $(seq 120); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.5; done
kill -0 "$RUN_PID" 2>/dev/null && fail "run.sh still running 60 s after SIGINT"
wait "$RUN_PID" || fail "run.sh exited with status $? after SIGINT"
left=
for p in $PIDS; do
	kill -0 "$p" 2>/dev/null && left="$left $p($(tr '\0' ' ' < "/proc/$p/cmdline" | cut -c1-80))"
done
[ -z "$left" ] || fail "processes left after Ctrl-C:$left"
echo "DEMO OK"
