#!/usr/bin/env bash
# `make bench`: the load scenarios of docs/performance.md on this machine,
# measured against yardsticks taken in the same run.
#
# It starts a private ZooKeeper and Redis (scripts/services.sh) and builds
# three targets into DIR:
#
#   gopush  this tree (as it is on disk)
#   base    the baseline: the commit the branch started from (default
#           `git merge-base HEAD main`; BENCH_BASE=<rev> picks another,
#           BENCH_BASE=none skips it), exported with git archive and built
#   floor   cmd/gopush-floor: the bare writer (one process writing the
#           frames to the subscribers) and the bare push path (an HTTP
#           handler making one gob RPC to a process that writes one frame)
#
# and runs the compared scenarios against each, in BENCH_ROUNDS rounds whose
# target order rotates (gopush base floor, base floor gopush, ...), so that
# a machine getting busier or quieter favours none. gopush and base get a
# cluster of their own each time (message, BENCH_COMETS comets and web,
# with benchmarking configs: log level warn); the floor gets its three
# processes. Then `gopush-bench -report` prints gopush's figures beside
# their ratios to the floor and to the baseline (report.md), and the other
# scenarios named in BENCH_ONLY run once against gopush.
#
# Compared scenarios (the default BENCH_ONLY):
#   private        push/private expire 0: pushes/s, CPU per push (web +
#                  comet); floor: the bare push path
#   private-store  push/private expire 600: CPU per push of web, comet,
#                  message and redis-server; no floor (the floor keeps
#                  nothing), its ratio is to private's
#   fanout-2k      push/all, push/room, push/mprivate to BENCH_KEYS
#                  connections, one call at a time: deliveries/s of one
#                  call; floor: the bare writer
#   fanout-18k     the same to BENCH_FAN_BIG connections
# Single scenarios (gopush only, when named in BENCH_ONLY):
#   idle-tcp idle-ws idle-wss idle-sse private-ws private-wss private-sse
#   mprivate mprivate-big serverget metrics-cost cluster
#
# Every run's correctness check (nothing lost, nothing duplicated, the
# sampled stored messages there) is a hard failure: the script carries on
# and exits non-zero at the end.
#
# Results go to BENCH_OUT (default tmp/bench/ in the repository, which git
# ignores): runs/<scenario>.<target>.<round>.json, summary.txt (every
# run's table), report.md (the comparison), profiles.
#
# Sizes, from the environment:
#   BENCH_ROUNDS      rounds of the compared scenarios           (default 3)
#   BENCH_BASE        baseline revision, or none      (default merge-base)
#   BENCH_KEYS        keys (one subscriber each) for pushes   (default 2000)
#   BENCH_FAN_BIG     connections of fanout-18k              (default 18000)
#   BENCH_CLIENTS     concurrent admin HTTP clients           (default 8)
#   BENCH_DURATION    length of each push run                 (default 10s)
#   BENCH_PROFILE     on: CPU profiles of gopush's web and comet during the
#                     compared runs (it slows them: the ratios then mean
#                     less)                                   (default off)
#   BENCH_IDLE_N      idle subscribers per protocol           (default 18000)
#   BENCH_BIG_KEYS    keys of the big mprivate call           (default 100000)
#   BENCH_BIG_ONLINE  of which online                         (default 18000)
#   BENCH_COMETS      comet processes                         (default 1)
#   BENCH_CLUSTER_N   subscribers of the cluster scenario     (default 100000)
#   BENCH_CLUSTER_HOLD  how long they heartbeat before the push (default 5m)
#   BENCH_METRICS     on: the daemons serve /metrics (metrics.bind), as
#                     by default; off: metrics.bind = [] (default on)
#   BENCH_COST_ROUNDS rounds of metrics-cost, each one run with metrics
#                     off and one with them on and scraped every second
#                     (default 3)
#   BENCH_ONLY        space-separated scenario names (default: the compared
#                     ones, private private-store fanout-2k fanout-18k, and
#                     push-batch)
#
# The wss scenarios (WebSocket over TLS, docs/protocol.md §2.4) run against
# each comet's websocket.tls.bind, with a self-signed certificate made for
# the run (openssl).
#
# The cluster scenario (100 000 subscribers over 6 comets, 5 minutes) is the
# long one: BENCH_COMETS=6 BENCH_ONLY=cluster make bench
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=lib.sh
. scripts/lib.sh

ROUNDS=${BENCH_ROUNDS:-3}
FAN_BIG=${BENCH_FAN_BIG:-18000}
PROFILE=${BENCH_PROFILE:-off}
IDLE_N=${BENCH_IDLE_N:-18000}
KEYS=${BENCH_KEYS:-2000}
CLIENTS=${BENCH_CLIENTS:-8}
DURATION=${BENCH_DURATION:-10s}
BIG_KEYS=${BENCH_BIG_KEYS:-100000}
BIG_ONLINE=${BENCH_BIG_ONLINE:-18000}
COMETS=${BENCH_COMETS:-1}
CLUSTER_N=${BENCH_CLUSTER_N:-100000}
CLUSTER_HOLD=${BENCH_CLUSTER_HOLD:-5m}
METRICS=${BENCH_METRICS:-on}
COST_ROUNDS=${BENCH_COST_ROUNDS:-3}
ONLY=${BENCH_ONLY:-private private-store fanout-2k fanout-18k push-batch}
OUT=${BENCH_OUT:-$ROOT/tmp/bench}

command -v go >/dev/null || die "go is not on PATH (expected at /usr/local/go/bin)"
command -v openssl >/dev/null || apt_install openssl || die "openssl is needed for the wss certificate"
if ! command -v wrk >/dev/null; then
	if [ "$(id -u)" = 0 ]; then
		log "installing wrk"
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk; } >&2 ||
			log "could not install wrk; /1/server/get is loaded by gopush-bench instead"
	fi
fi

DIR=$(mktemp -d "${TMPDIR:-/tmp}/gopush-bench.XXXXXX")
cleanup() {
	local f
	settle_spawn
	for f in "$DIR"/web.pid "$DIR"/comet*.pid "$DIR"/message.pid "$DIR"/floor-*.pid; do
		[ -e "$f" ] && reap "$f" 20
	done
	scripts/services.sh stop "$DIR/svc" || true
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

mkdir -p "$OUT/runs" "$DIR/bin" "$DIR/base/bin"
rm -f "$OUT"/*.json "$OUT"/*.txt "$OUT"/*.pprof "$OUT"/report.md "$OUT"/runs/*.json

log "building $(git rev-parse --short HEAD 2>/dev/null || echo 'this tree')$(git diff --quiet HEAD 2>/dev/null || echo ' with uncommitted changes')"
# -trimpath: the build cache then serves the baseline's unchanged packages
# too, although its source lies in a new directory each run.
go build -trimpath -o "$DIR/bin/" ./cmd/comet ./cmd/web ./cmd/message ./cmd/gopush-bench ./cmd/gopush-floor
BENCH=$DIR/bin/gopush-bench

# The baseline: the commit this branch started from, built from a clean
# export of it.
BASE_REV=${BENCH_BASE:-}
if [ -z "$BASE_REV" ]; then
	BASE_REV=$(git merge-base HEAD main 2>/dev/null || git rev-parse HEAD 2>/dev/null || echo none)
fi
TARGETS="gopush floor"
if [ "$BASE_REV" != none ]; then
	BASE_REV=$(git rev-parse --verify "$BASE_REV^{commit}") || die "BENCH_BASE=$BASE_REV is not a commit"
	log "building the baseline $(git rev-parse --short "$BASE_REV") ($(git log -1 --format=%s "$BASE_REV"))"
	mkdir -p "$DIR/base/src"
	git archive "$BASE_REV" | tar -x -C "$DIR/base/src"
	(cd "$DIR/base/src" && go build -trimpath -o "$DIR/base/bin/" ./cmd/comet ./cmd/web ./cmd/message) ||
		die "the baseline $BASE_REV does not build"
	TARGETS="gopush base floor"
fi

scripts/services.sh start "$DIR/svc" zk redis || die "could not start ZooKeeper and Redis"
# shellcheck disable=SC1091
. "$DIR/svc/env"

# The certificate of the comets' TLS listeners: self-signed, so it is its own
# CA for gopush-bench -ca.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj "/CN=gopush bench" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
	-keyout "$DIR/tls-key.pem" -out "$DIR/tls-cert.pem" 2>/dev/null || die "openssl could not make a certificate"

ZKROOT=  # set by start_cluster: each cluster registers under a fresh root
BIN=$DIR/bin # the daemons of the target being run
MSG_RPC=127.0.0.1:$(free_port)
WEB_HTTP=127.0.0.1:$(free_port)
WEB_ADMIN=127.0.0.1:$(free_port)
WEB_PPROF=127.0.0.1:$(free_port)
MSG_PPROF=127.0.0.1:$(free_port)
MSG_METRICS=127.0.0.1:$(free_port)
WEB_METRICS=127.0.0.1:$(free_port)

# metrics_bind ADDR: the metrics.bind value for BENCH_METRICS.
metrics_bind() {
	if [ "$METRICS" = on ]; then echo "[\"$1\"]"; else echo "[]"; fi
}

zk_conf() {
	cat <<-EOF
	[zookeeper]
	addr = ["$GOPUSH_TEST_ZK"]
	timeout = "30s"
	comet.path = "$ZKROOT/comet"
	comet.node = "$1"
	comet.weight = 1
	message.path = "$ZKROOT/message"
	migrate.path = "$ZKROOT/migrate"
	EOF
}

declare -a COMET_TCP COMET_WS COMET_WSS COMET_PPROF COMET_METRICS COMET_STAT COMET_RPC
for i in $(seq 1 "$COMETS"); do
	COMET_TCP[i]=127.0.0.1:$(free_port)
	COMET_WS[i]=127.0.0.1:$(free_port)
	COMET_WSS[i]=127.0.0.1:$(free_port)
	COMET_PPROF[i]=127.0.0.1:$(free_port)
	COMET_METRICS[i]=127.0.0.1:$(free_port)
	COMET_STAT[i]=127.0.0.1:$(free_port)
	COMET_RPC[i]=127.0.0.1:$(free_port)
done

# write_configs: the daemons' configs, with metrics as BENCH_METRICS says.
write_configs() {
local i
cat > "$DIR/message.toml" <<EOF
node.weight = 1
pprof.bind = ["$MSG_PPROF"]
metrics.bind = $(metrics_bind "$MSG_METRICS")
[log]
level = "warn"
[rpc]
bind = ["$MSG_RPC"]
[storage]
type = "redis"
[redis]
idle = 64
active = 256
[redis.source]
"node1:1" = "tcp@$GOPUSH_TEST_REDIS"
$(zk_conf node1)
EOF

for i in $(seq 1 "$COMETS"); do
	cat > "$DIR/comet$i.toml" <<-EOF
	tcp.bind = ["${COMET_TCP[i]}"]
	websocket.bind = ["${COMET_WS[i]}"]
	websocket.tls.bind = ["${COMET_WSS[i]}"]
	tls.cert = "$DIR/tls-cert.pem"
	tls.key = "$DIR/tls-key.pem"
	stat.bind = ["${COMET_STAT[i]}"]
	pprof.bind = ["${COMET_PPROF[i]}"]
	metrics.bind = $(metrics_bind "${COMET_METRICS[i]}")
	[log]
	level = "warn"
	[channel]
	bucket = 256
	[rpc]
	bind = ["${COMET_RPC[i]}"]
	$(zk_conf "node$i")
	EOF
done

cat > "$DIR/web.toml" <<EOF
http.bind = ["$WEB_HTTP"]
admin.bind = ["$WEB_ADMIN"]
# a 100 000-key mprivate body is about 1.5 MB
admin.maxbody = 16777216
pprof.bind = ["$WEB_PPROF"]
metrics.bind = $(metrics_bind "$WEB_METRICS")
[log]
level = "warn"
$(zk_conf node1)
EOF

}
listening() { port_busy "${1##*:}"; }

start_comets() {
	local i
	for i in $(seq 1 "$COMETS"); do
		spawn "$DIR/comet$i.pid" "$DIR/comet$i.log" "$BIN/comet" -c "$DIR/comet$i.toml"
	done
	for i in $(seq 1 "$COMETS"); do
		wait_for 30 "comet$i" listening "${COMET_TCP[i]}" || { cat "$DIR/comet$i.log" >&2; die "comet$i did not start"; }
	done
}

# web routes keys once it has seen the comets in ZooKeeper: wait until 60
# keys land on all BENCH_COMETS of them.
routed() {
	local k servers
	servers=$(for k in $(seq 1 60); do
		curl -s "http://$WEB_HTTP/1/server/get?k=probe$k&p=2" | grep -o '"server":"[^"]*"'
	done | sort -u | wc -l)
	[ "$servers" -ge "$COMETS" ]
}

# fresh_comets: restart the comets, so that an RSS measurement starts from a
# heap that no earlier scenario grew.
fresh_comets() {
	local i
	for i in $(seq 1 "$COMETS"); do reap "$DIR/comet$i.pid" 20; done
	start_comets
	wait_for 30 "web routing" routed || { cat "$DIR/web.log" >&2; die "web does not route keys to every comet"; }
	sleep 2
}

# start_cluster TARGET: message, the comets and web of TARGET (gopush or
# base), registered under a fresh ZooKeeper root.
start_cluster() {
	case $1 in
	gopush) BIN=$DIR/bin ;;
	base) BIN=$DIR/base/bin ;;
	esac
	ZKROOT=/gopush-bench-$$-$RANDOM-$1
	write_configs
	log "starting $1: message, $COMETS comet(s), web"
	spawn "$DIR/message.pid" "$DIR/message.log" "$BIN/message" -c "$DIR/message.toml"
	wait_for 30 message listening "$MSG_RPC" || { cat "$DIR/message.log" >&2; die "message did not start"; }
	start_comets
	spawn "$DIR/web.pid" "$DIR/web.log" "$BIN/web" -c "$DIR/web.toml"
	wait_for 30 web listening "$WEB_ADMIN" || { cat "$DIR/web.log" >&2; die "web did not start"; }
	wait_for 30 "web routing" routed || { cat "$DIR/web.log" >&2; die "web does not route keys to every comet"; }
	sleep 2 # let web see every comet, not only the first
}

stop_cluster() {
	local i
	reap "$DIR/web.pid" 20
	for i in $(seq 1 "$COMETS"); do reap "$DIR/comet$i.pid" 20; done
	reap "$DIR/message.pid" 20
}

# The floor's processes: the bare writer, and the two halves of the bare
# push path.
FLOOR_W_TCP=127.0.0.1:$(free_port)
FLOOR_W_HTTP=127.0.0.1:$(free_port)
FLOOR_P_TCP=127.0.0.1:$(free_port)
FLOOR_P_RPC=127.0.0.1:$(free_port)
FLOOR_P_HTTP=127.0.0.1:$(free_port)
start_floor() {
	log "starting the floor: writer, push-comet, push-web"
	spawn "$DIR/floor-writer.pid" "$DIR/floor.log" "$DIR/bin/gopush-floor" writer -tcp "$FLOOR_W_TCP" -http "$FLOOR_W_HTTP"
	spawn "$DIR/floor-pcomet.pid" "$DIR/floor.log" "$DIR/bin/gopush-floor" push-comet -tcp "$FLOOR_P_TCP" -rpc "$FLOOR_P_RPC"
	wait_for 30 "floor push-comet" listening "$FLOOR_P_RPC" || { cat "$DIR/floor.log" >&2; die "gopush-floor push-comet did not start"; }
	spawn "$DIR/floor-pweb.pid" "$DIR/floor.log" "$DIR/bin/gopush-floor" push-web -http "$FLOOR_P_HTTP" -rpc "$FLOOR_P_RPC" -comet-tcp "$FLOOR_P_TCP"
	wait_for 30 "floor writer" listening "$FLOOR_W_HTTP" || { cat "$DIR/floor.log" >&2; die "gopush-floor writer did not start"; }
	wait_for 30 "floor push-web" listening "$FLOOR_P_HTTP" || { cat "$DIR/floor.log" >&2; die "gopush-floor push-web did not start"; }
}

stop_floor() {
	local f
	for f in writer pweb pcomet; do reap "$DIR/floor-$f.pid" 20; done
}

PIDS=(-pid "message=@$DIR/message.pid" -pid "web=@$DIR/web.pid" -pid "redis=@$DIR/svc/redis.pid")
for i in $(seq 1 "$COMETS"); do PIDS+=(-pid "comet$i=@$DIR/comet$i.pid"); done
COMMON=(-http "$WEB_HTTP" -admin "$WEB_ADMIN" "${PIDS[@]}")
PROCS=$(( (IDLE_N + 15999) / 16000 ))
FAILED=

wants() { [[ " $ONLY " == *" $1 "* ]]; }

# run_bench TITLE ARGS...: run gopush-bench, keep its table; a failed run
# (correctness check or error) fails the whole bench at the end.
run_bench() {
	local title=$1
	shift
	log ""
	log "=== $title: gopush-bench $*"
	{
		echo "=== $title"
		echo "gopush-bench $*"
	} >> "$OUT/summary.txt"
	local rc=0
	"$BENCH" "$@" | tee -a "$OUT/summary.txt" || rc=$?
	if [ $rc != 0 ]; then
		log "$title: gopush-bench exited with $rc"
		echo "$title: FAILED (gopush-bench exited with $rc)" >> "$OUT/summary.txt"
		FAILED="$FAILED $title"
	fi
	echo >> "$OUT/summary.txt"
	sleep 2 # let the server free the closed connections before the next run
}

# scenario NAME ARGS...: a single scenario against gopush's cluster.
scenario() {
	local name=$1
	shift
	run_bench "$name" "${COMMON[@]}" -name "$name" -json "$OUT/$name.json" "$@"
}

PROF=(-pprof "comet1=${COMET_PPROF[1]}" -pprof "web=$WEB_PPROF" -pprof "message=$MSG_PPROF" -pprof-dir "$OUT")

# compared TARGET ROUND: the compared scenarios of BENCH_ONLY against one
# target. The files are runs/<scenario>.<target>.<round>.json.
compared() {
	local t=$1 r=$2 sc args prof=()
	[ "$t" = gopush ] && [ "$PROFILE" = on ] && prof=("${PROF[@]}")
	local fan2=(-scenario fanout -modes all,room,mprivate -n "$KEYS" -clients 1 -rate 10 -max 20 -expire 0 -drain 20s)
	local fan18=(-scenario fanout -modes all,room,mprivate -n "$FAN_BIG" -procs $(( (FAN_BIG + 15999) / 16000 ))
		-clients 1 -rate 2 -max 10 -expire 0 -drain 30s)
	for sc in private private-store fanout-2k fanout-18k; do
		wants "$sc" || continue
		case $sc in
		private) args=(-scenario private -n "$KEYS" -clients "$CLIENTS" -duration "$DURATION" -expire 0) ;;
		private-store)
			[ "$t" = floor ] && continue # the floor keeps nothing
			args=(-scenario private -n "$KEYS" -clients "$CLIENTS" -duration "$DURATION" -expire 600 -verify-stored 20) ;;
		fanout-2k) args=("${fan2[@]}") ;;
		fanout-18k) args=("${fan18[@]}") ;;
		esac
		local json="$OUT/runs/$sc.$t.$r.json" target=("${COMMON[@]}")
		case $sc in fanout-*) json="$OUT/runs/$sc-{mode}.$t.$r.json" ;; esac
		if [ "$t" = floor ]; then
			case $sc in
			private) target=(-http "$FLOOR_P_HTTP" -admin "$FLOOR_P_HTTP" -pid "web=@$DIR/floor-pweb.pid" -pid "comet1=@$DIR/floor-pcomet.pid") ;;
			*) target=(-http "$FLOOR_W_HTTP" -admin "$FLOOR_W_HTTP" -pid "comet1=@$DIR/floor-writer.pid") ;;
			esac
		fi
		run_bench "$sc ($t, round $r)" "${target[@]}" -name "$sc.$t.$r" -json "$json" "${args[@]}" "${prof[@]}"
	done
}

COMPARED=
for sc in private private-store fanout-2k fanout-18k; do wants "$sc" && COMPARED="$COMPARED $sc"; done
if [ -n "$COMPARED" ]; then
	read -r -a tl <<< "$TARGETS"
	for r in $(seq 1 "$ROUNDS"); do
		# Rotate the order of the targets from round to round.
		for k in $(seq 0 $(( ${#tl[@]} - 1 ))); do
			t=${tl[(k + r - 1) % ${#tl[@]}]}
			log ""
			log "##### round $r of $ROUNDS: $t ($(date -u +%T), load average $(cut -d' ' -f1 /proc/loadavg))"
			case $t in
			floor) start_floor; compared floor "$r"; stop_floor ;;
			*) start_cluster "$t"; compared "$t" "$r"; stop_cluster ;;
			esac
		done
	done
	{
		echo "=== report: gopush ($(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo '+changes')) against base ($([ "$BASE_REV" = none ] && echo none || git rev-parse --short "$BASE_REV")) and the floor, $ROUNDS round(s), $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
		echo
	} > "$OUT/report.md"
	"$BENCH" -report "$OUT/runs" >> "$OUT/report.md" || FAILED="$FAILED report"
	log ""
	cat "$OUT/report.md" >&2
	cat "$OUT/report.md" >> "$OUT/summary.txt"
fi

SINGLE=
for sc in idle-tcp idle-ws idle-wss idle-sse private-ws private-wss private-sse mprivate mprivate-big push-batch serverget metrics-cost cluster; do
	wants "$sc" && SINGLE="$SINGLE $sc"
done
[ -n "$SINGLE" ] && start_cluster gopush

wants idle-tcp && fresh_comets && scenario idle-tcp -scenario idle -proto tcp -n "$IDLE_N" -procs "$PROCS" -src 8 -hold 20s -settle 5s
wants idle-ws && fresh_comets && scenario idle-ws -scenario idle -proto ws -n "$IDLE_N" -procs "$PROCS" -src 8 -hold 20s -settle 5s
wants idle-wss && fresh_comets && scenario idle-wss -scenario idle -proto wss -ca "$DIR/tls-cert.pem" -n "$IDLE_N" -procs "$PROCS" -src 8 -hold 20s -settle 5s
wants idle-sse && fresh_comets && scenario idle-sse -scenario idle -proto sse -n "$IDLE_N" -procs "$PROCS" -src 8 -hold 20s -settle 5s
wants private-ws && scenario private-ws -scenario private -proto ws -n "$KEYS" -clients "$CLIENTS" -duration "$DURATION" -expire 0
wants private-sse && scenario private-sse -scenario private -proto sse -n "$KEYS" -clients "$CLIENTS" -duration "$DURATION" -expire 0
wants private-wss && scenario private-wss -scenario private -proto wss -ca "$DIR/tls-cert.pem" -n "$KEYS" -clients "$CLIENTS" -duration "$DURATION" -expire 0
# comet, web and message are profiled while the push runs (-pprof).
wants mprivate && scenario mprivate -scenario mprivate -n "$KEYS" -clients 1 -rate 5 -max 40 -duration 8s -expire 0 "${PROF[@]}" -cpuprofile "$OUT/mprivate-bench.pprof"
wants push-batch && scenario push-batch -scenario push-batch -n "$KEYS" -clients 4 -batch 2000 -duration "$DURATION" -expire 0 "${PROF[@]}"
wants mprivate-big && scenario mprivate-big -scenario mprivate -n "$BIG_ONLINE" -push-keys "$BIG_KEYS" -procs $(( (BIG_ONLINE + 15999) / 16000 )) -clients 1 -max 1 -expire 600 -verify-stored 50 -drain 30s

if wants cluster; then
	# Subscribers heartbeat for CLUSTER_HOLD (comet CPU, drops), then one
	# mprivate to every key. One tool process per 15 000 connections.
	scenario cluster -scenario mprivate -n "$CLUSTER_N" -procs $(( (CLUSTER_N + 14999) / 15000 )) -src 16 \
		-hold "$CLUSTER_HOLD" -clients 1 -max 1 -expire 0 -drain 30s -settle 10s -parallel 32
fi

if wants metrics-cost; then
	# The cost of metrics (docs/performance.md): the private push run
	# (expire 0) alternately with metrics off (metrics.bind = [], no
	# instrumentation) and on (scraped every second, as a busy Prometheus
	# would), every daemon restarted in between; the medians are compared.
	restart_all() {
		stop_cluster
		start_cluster gopush
	}
	scrape_loop() {
		local a
		while true; do
			for a in "$MSG_METRICS" "$WEB_METRICS" "${COMET_METRICS[@]:1}"; do
				curl -s -o /dev/null "http://$a/metrics" || true
			done
			sleep 1
		done
	}
	saved=$METRICS
	for r in $(seq 1 "$COST_ROUNDS"); do
		# off-on, then on-off: a machine that gets busier or quieter during
		# the run favours neither.
		order="off on"
		[ $((r % 2)) = 0 ] && order="on off"
		for METRICS in $order; do
			restart_all
			scraper=
			if [ "$METRICS" = on ]; then
				scrape_loop &
				scraper=$!
			fi
			prof=()
			[ "$METRICS" = on ] && prof=("${PROF[@]}") # where the CPU goes with metrics on
			scenario "metrics-$METRICS-$r" -scenario private -n "$KEYS" -clients "$CLIENTS" -duration "$DURATION" -expire 0 "${prof[@]}"
			[ -n "$scraper" ] && { kill "$scraper"; wait "$scraper" 2>/dev/null || true; }
		done
	done
	METRICS=$saved
	[ "$METRICS" = on ] || restart_all
	median() { sort -n | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
	rate_of() { grep -o '"accepted_per_sec": *[0-9.e+]*' "$1" | sed 's/.*: *//'; }
	# CPU seconds of web and the comets per 1000 pushes delivered, from the
	# summary lines gopush-bench prints.
	cpu_of() {
		awk -v run="=== $1" '$0 == run {on = 1; next} /^=== / {on = 0}
			on && /^cpu (web|comet)/ {for (i = 1; i <= NF; i++) if ($i == "per") s += $(i - 2)}
			END {printf "%.4f\n", s}' "$OUT/summary.txt"
	}
	off=$(for f in "$OUT"/metrics-off-*.json; do rate_of "$f"; done | median)
	on=$(for f in "$OUT"/metrics-on-*.json; do rate_of "$f"; done | median)
	{
		echo "=== metrics-cost ($COST_ROUNDS rounds of private, expire 0)"
		echo "off: $(for f in "$OUT"/metrics-off-*.json; do rate_of "$f"; done | tr '\n' ' ')pushes/s, median $off"
		echo "on:  $(for f in "$OUT"/metrics-on-*.json; do rate_of "$f"; done | tr '\n' ' ')pushes/s, median $on"
		awk -v off="$off" -v on="$on" 'BEGIN { if (off > 0) printf "throughput with metrics on: %.1f %% lower (the on runs are also profiled; on a busy machine this is mostly noise)\n", (off - on) * 100 / off }'
		coff=$(for r in $(seq 1 "$COST_ROUNDS"); do cpu_of "metrics-off-$r"; done | median)
		con=$(for r in $(seq 1 "$COST_ROUNDS"); do cpu_of "metrics-on-$r"; done | median)
		echo "CPU s of web + comets per 1000 deliveries: off median $coff, on median $con"
		awk -v off="$coff" -v on="$con" 'BEGIN { if (off > 0) printf "CPU per push with metrics on: %.1f %% more (profiling included)\n", (on - off) * 100 / off }'
		# Where the CPU of the runs with metrics on went (profiles, so
		# independent of the machine's load): samples inside client_golang
		# and internal/observe (counting, timing, serving scrapes), plus the
		# own time of web's and message's wrappers around requests and calls.
		for d in web comet1; do
			for f in "$OUT"/metrics-on-*-"$d".pprof; do
				[ -s "$f" ] || continue
				lib=$(go tool pprof -top -focus='prometheus|gopush/internal/observe' "$f" 2>/dev/null |
					awk '/^Showing nodes accounting for/ {sub(",", "", $6); print $6}')
				own=$(go tool pprof -top -nodecount=100000 "$f" 2>/dev/null |
					awk '/^ *[0-9.]+(s|ms) / && /\(\*metrics\)|measuredCaller|measuredStorage|statusWriter/ {
						v = $2; sub("%", "", v); sum += v } END {printf "%.2f%%\n", sum}')
				echo "$(basename "$f"): client_golang and observe $lib of its CPU, metrics wrappers' own time $own"
			done
		done
	} | tee -a "$OUT/summary.txt"
fi

if wants serverget; then
	if command -v wrk >/dev/null; then
		log ""
		log "=== serverget: wrk -t2 -c16 -d10s http://$WEB_HTTP/1/server/get?k=bench&p=2"
		{
			echo "=== serverget (wrk -t2 -c16 -d10s)"
			wrk -t2 -c16 -d10s --latency "http://$WEB_HTTP/1/server/get?k=bench&p=2"
			echo
		} | tee -a "$OUT/summary.txt"
	fi
	scenario serverget-go -scenario serverget -clients 16 -duration 10s -push-keys 2000 -n 0 -pprof "web=$WEB_PPROF" -pprof-dir "$OUT"
fi

for p in "$OUT"/*.pprof; do
	[ -s "$p" ] && go tool pprof -top -nodecount=30 "$p" > "${p%.pprof}.top.txt" 2>/dev/null || true
done

log ""
log "results in $OUT (report.md, summary.txt, runs/*.json, *.top.txt profiles)"
if [ -n "$FAILED" ]; then
	log "FAILED:$FAILED (see summary.txt)"
	exit 1
fi
