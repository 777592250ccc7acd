#!/usr/bin/env bash
# `make run` and `make stop`: a whole gopush cluster on this machine.
#
#   scripts/run.sh start   private ZooKeeper and Redis (free ports), then
#                          message, comet and web from bin/ with the example
#                          configs; prints the endpoints and a demo; stays in
#                          the foreground until Ctrl-C, then stops it all.
#   scripts/run.sh stop    stops a run left in the background.
#
# Everything lives under run/: the services, the generated configs
# (run/conf/*.toml: conf/*.toml with the private ZooKeeper and Redis
# addresses), the daemons' logs (run/logs/) and pid files.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=lib.sh
. scripts/lib.sh

RUN=$ROOT/run
DAEMONS=(message comet web)          # start order; stopped in reverse
HTTP=localhost:8090 ADMIN=localhost:8091

# The daemons listen where the example configs say (the defaults).
PORTS=(8070 8071 6968 6969 6970 6971 6972 6973 8090 8091 8190 8191)

stop_all() {
	local i
	settle_spawn
	[ -d "$RUN" ] || return 0
	for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
		reap "$RUN/${DAEMONS[$i]}.pid" 20
	done
	scripts/services.sh stop "$RUN/services" || true
}

stop() {
	# A run in the foreground (or in the background) stops everything itself
	# on SIGTERM; wait for it, then make sure nothing is left.
	if alive "$RUN/run.pid"; then
		local pid
		read -r pid _ < "$RUN/run.pid"
		kill -TERM "$pid" 2>/dev/null || true
		wait_for 60 "run.sh (pid $pid) to stop" not_alive "$RUN/run.pid" || true
	fi
	stop_all
	rm -f "$RUN/run.pid"
	log "stopped"
}

not_alive() { ! alive "$1"; }

web_ready() {
	alive "$RUN/web.pid" || return 2
	curl -s --max-time 2 "http://$HTTP/1/server/get?k=demo&p=2" 2>/dev/null | grep -q '"ret":0'
}

listening() {
	alive "$RUN/$1.pid" || return 2
	port_busy "$2"
}

start() {
	local d p busy=()
	for d in "${DAEMONS[@]}"; do
		[ -x "bin/$d" ] || die "bin/$d is missing; run make build (make run does)"
	done
	if alive "$RUN/run.pid"; then
		die "gopush already runs from $RUN; stop it with: make stop"
	fi
	stop_all   # whatever a killed run left behind
	for p in "${PORTS[@]}"; do
		port_busy "$p" && busy+=("$p")
	done
	[ ${#busy[@]} = 0 ] || die "port(s) ${busy[*]} already in use; make run needs the default ports of conf/*.toml free"

	mkdir -p "$RUN/conf" "$RUN/logs"
	echo "$$ $(proc_start $$)" > "$RUN/run.pid"
	trap 'log ""; log "stopping..."; stop_all; rm -f "$RUN/run.pid"; log "stopped"; exit 0' INT TERM HUP

	scripts/services.sh start "$RUN/services" zk redis
	# shellcheck disable=SC1091
	. "$RUN/services/env"
	for d in "${DAEMONS[@]}"; do
		sed -e "s/\"localhost:2181\"/\"$GOPUSH_TEST_ZK\"/" \
			-e "s/\"tcp@localhost:6379\"/\"tcp@$GOPUSH_TEST_REDIS\"/" \
			"conf/$d.toml" > "$RUN/conf/$d.toml"
	done

	spawn "$RUN/message.pid" "$RUN/logs/message.log" "bin/message" -c "$RUN/conf/message.toml"
	wait_for 30 "message" listening message 8070 || fail message
	spawn "$RUN/comet.pid" "$RUN/logs/comet.log" "bin/comet" -c "$RUN/conf/comet.toml"
	wait_for 30 "comet" listening comet 6969 || fail comet
	spawn "$RUN/web.pid" "$RUN/logs/web.log" "bin/web" -c "$RUN/conf/web.toml"
	wait_for 60 "web answering /1/server/get with a comet" web_ready || fail web

	banner

	# Stay until Ctrl-C (the trap), or until a daemon dies.
	while true; do
		for d in "${DAEMONS[@]}"; do
			if ! alive "$RUN/$d.pid"; then
				log "$d exited; the end of run/logs/$d.log:"
				tail -n 20 "$RUN/logs/$d.log" >&2 || true
				stop_all
				rm -f "$RUN/run.pid"
				exit 1
			fi
		done
		sleep 1 &
		wait $! || true
	done
}

fail() {
	log "$1 did not start; the end of run/logs/$1.log:"
	tail -n 20 "$RUN/logs/$1.log" >&2 || true
	stop_all
	rm -f "$RUN/run.pid"
	exit 1
}

banner() {
	cat <<-EOF

	gopush is running (configs in run/conf/, logs in run/logs/). Ctrl-C stops it all.

	  web, public API    http://$HTTP     /1/server/get /1/msg/get /1/time/get
	  web, admin API     http://$ADMIN     /1/admin/push/private /1/admin/push/mprivate ...
	  comet, TCP         localhost:6969
	  comet, WebSocket   ws://localhost:6968/sub?key=K&heartbeat=30&ver=1.0
	  comet, stats       http://localhost:6972/stat?type=server
	  comet, RPC         localhost:6970
	  message, RPC       localhost:8070
	  metrics, health    http://localhost:6973/metrics (comet), :8191 (web), :8071 (message); /healthz, /readyz
	  cluster dashboard  http://$ADMIN/admin/
	  ZooKeeper          $GOPUSH_TEST_ZK (private)
	  Redis              $GOPUSH_TEST_REDIS (private)

	Try it from another terminal:

	  # which comet serves the key Terry-Mao over TCP (p=2; p=1 is WebSocket)
	  curl 'http://$HTTP/1/server/get?k=Terry-Mao&p=2'

	  # subscribe: key Terry-Mao, heartbeat 30 s, no token, client version 1.0;
	  # the loop sends the heartbeat byte h, comet answers +h
	  (printf '*5\r\n\$3\r\nsub\r\n\$9\r\nTerry-Mao\r\n\$2\r\n30\r\n\$0\r\n\r\n\$3\r\n1.0\r\n'; while sleep 25; do printf h; done) | nc localhost 6969

	  # push to it, kept 600 s for when it is offline
	  curl -d '{"hello":"world"}' 'http://$ADMIN/1/admin/push/private?key=Terry-Mao&expire=600'

	  # the offline messages of Terry-Mao newer than mid 0
	  curl 'http://$HTTP/1/msg/get?k=Terry-Mao&m=0'

	EOF
}

case ${1:-} in
start) start ;;
stop) stop ;;
*) log "usage: $0 start|stop"; exit 2 ;;
esac
