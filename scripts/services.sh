#!/usr/bin/env bash
# Private ZooKeeper, Redis and MariaDB for tests and `make run`.
#
#   scripts/services.sh start DIR [zk] [redis] [mysql] [zk3] [sentinel]
#                                  (default: zk redis mysql)
#   scripts/services.sh stop DIR
#
# zk3 is a ZooKeeper ensemble of three servers (zk1..zk3) and sentinel a
# Redis primary with one replica watched by three Sentinels (master name
# "gopush", quorum 2, a primary is failed over after 1 s without answer);
# neither starts by default.
#
# start installs what is missing (Debian), then starts each service on a free
# loopback port with all of its files under DIR, waits until each answers,
# and writes DIR/env:
#
#   export GOPUSH_TEST_ZK=127.0.0.1:P GOPUSH_TEST_REDIS=127.0.0.1:P \
#          'GOPUSH_TEST_MYSQL=gopush:gopush@tcp(127.0.0.1:P)/'
#
# plus, when asked for, GOPUSH_TEST_ZK_ENSEMBLE=127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
# and GOPUSH_TEST_SENTINEL=sentinel@127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/gopush
# (a redis.source shard address, docs/reliability.md).
#
# Each start begins with empty data directories under DIR.
# stop stops exactly what start started (DIR/*.pid) and waits until it is
# gone. System-wide instances and default ports are never touched. If start
# is interrupted it stops what it had started; if it is killed outright,
# `stop DIR` still finds everything through the pid files.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

MYSQL_USER=gopush
MYSQL_PASS=gopush
JAVA_DIR=/usr/share/java

usage() {
	log "usage: $0 start DIR [zk] [redis] [mysql] [zk3] [sentinel] | stop DIR"
	exit 2
}

# install_missing installs the Debian packages of the services that are
# missing (apt_install keeps them from starting system-wide instances).
install_missing() {
	local missing=()
	{ command -v java >/dev/null && [ -e "$JAVA_DIR/zookeeper.jar" ]; } || missing+=(zookeeper)
	command -v redis-server >/dev/null || missing+=(redis-server)
	{ command -v mariadbd >/dev/null && command -v mariadb-install-db >/dev/null; } || missing+=(mariadb-server)
	command -v mariadb >/dev/null || missing+=(mariadb-client)
	command -v nginx >/dev/null || missing+=(nginx)
	command -v nc >/dev/null || missing+=(netcat-openbsd)
	command -v curl >/dev/null || missing+=(curl)
	command -v ss >/dev/null || missing+=(iproute2)
	command -v pgrep >/dev/null || missing+=(procps)
	apt_install "${missing[@]}"
}

# fresh_port: set PORT to a free port that this start has not handed out
# yet (the servers of an ensemble listen only once all have their ports).
# It sets a variable rather than printing: $(...) would forget TAKEN.
TAKEN=" "
fresh_port() {
	local i
	for i in $(seq 1 50); do
		PORT=$(free_port)
		if [[ $TAKEN != *" $PORT "* ]]; then
			TAKEN+="$PORT "
			return 0
		fi
	done
	die "no fresh port found"
}

zk_ruok() {
	local answer
	answer=$(timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 && printf ruok >&3 && cat <&3' "$1" 2>/dev/null) || true
	[ "$answer" = imok ]
}

redis_ping() {
	local answer
	answer=$(timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 && printf "PING\r\n" >&3 && head -c 5 <&3' "$1" 2>/dev/null) || true
	[ "$answer" = "+PONG" ]
}

# zk_server NAME PORT [SERVERS]: start one ZooKeeper server under DIR/NAME
# listening on 127.0.0.1:PORT. SERVERS, for an ensemble, holds the
# "server.N=..." lines and NAME ends in its id N.
zk_server() {
	local name=$1 port=$2 servers=${3:-} d=$DIR/$1
	rm -rf "$d/data"
	mkdir -p "$d/conf" "$d/data" "$d/logs"
	cat > "$d/conf/zoo.cfg" <<-CFG
	tickTime=2000
	initLimit=10
	syncLimit=5
	dataDir=$d/data
	clientPort=$port
	clientPortAddress=127.0.0.1
	admin.enableServer=false
	4lw.commands.whitelist=ruok,stat,srvr,mntr
	$servers
	CFG
	[ -z "$servers" ] || echo "${name##*[!0-9]}" > "$d/data/myid"
	cat > "$d/conf/log4j.properties" <<-CFG
	log4j.rootLogger=WARN, F
	log4j.appender.F=org.apache.log4j.FileAppender
	log4j.appender.F.File=$d/logs/zk.log
	log4j.appender.F.layout=org.apache.log4j.PatternLayout
	log4j.appender.F.layout.ConversionPattern=%d %p %c: %m%n
	CFG
	local cp="$d/conf" jar
	for jar in zookeeper zookeeper-jute slf4j-api slf4j-log4j12 log4j-1.2; do
		[ -e "$JAVA_DIR/$jar.jar" ] || die "$JAVA_DIR/$jar.jar is missing (package zookeeper)"
		cp="$cp:$JAVA_DIR/$jar.jar"
	done
	echo "$port" > "$d/port"
	spawn "$DIR/$name.pid" "$d/logs/out.log" java -Xmx256m -XX:+UseSerialGC \
		-Dzookeeper.log.dir="$d/logs" -cp "$cp" \
		org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/conf/zoo.cfg"
}

start_zk() {
	local port
	fresh_port; port=$PORT
	zk_server zk "$port"
	wait_for 60 "ZooKeeper on 127.0.0.1:$port" zk_ruok_alive zk "$port" ||
		fail "ZooKeeper did not start; see $DIR/zk/logs/out.log and $DIR/zk/logs/zk.log"
	ZK_ADDR=127.0.0.1:$port
	log "ZooKeeper listens on $ZK_ADDR"
}

# start_zk3: three servers that form one ensemble; ready when a quorum
# serves (each server answers ruok only once it has joined).
start_zk3() {
	local i ports=() servers="" p1 p2
	for i in 1 2 3; do
		fresh_port; ports+=("$PORT")
		fresh_port; p1=$PORT
		fresh_port; p2=$PORT
		servers+="server.$i=127.0.0.1:$p1:$p2"$'\n\t'
	done
	for i in 1 2 3; do
		zk_server "zk$i" "${ports[i-1]}" "$servers"
	done
	ZK_ENSEMBLE=
	for i in 1 2 3; do
		wait_for 90 "ZooKeeper zk$i on 127.0.0.1:${ports[i-1]}" zk_ensemble_alive "zk$i" "${ports[i-1]}" ||
			fail "ZooKeeper ensemble did not start; see $DIR/zk$i/logs/zk.log"
		ZK_ENSEMBLE+="${ZK_ENSEMBLE:+,}127.0.0.1:${ports[i-1]}"
	done
	log "ZooKeeper ensemble listens on $ZK_ENSEMBLE"
}

# zk_serving PORT: the server on PORT is a leader or follower of a quorum.
zk_serving() {
	local answer
	answer=$(timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 && printf srvr >&3 && cat <&3' "$1" 2>/dev/null) || true
	[[ $answer == *"Mode: leader"* || $answer == *"Mode: follower"* ]]
}

zk_ensemble_alive() { alive "$DIR/$1.pid" || return 2; zk_serving "$2"; }

zk_ruok_alive() { alive "$DIR/$1.pid" || return 2; zk_ruok "$2"; }

# redis_server NAME PORT [ARGS...]: start redis-server under DIR/NAME.
redis_server() {
	local name=$1 port=$2 d=$DIR/$1
	shift 2
	rm -rf "$d"
	mkdir -p "$d"
	echo "$port" > "$d/port"
	spawn "$DIR/$name.pid" "$d/out.log" redis-server --bind 127.0.0.1 --port "$port" \
		--save "" --appendonly no --daemonize no --dir "$d" --logfile "" \
		--maxclients 10000 "$@"
	wait_for 30 "Redis $name on 127.0.0.1:$port" redis_ping_alive "$name" "$port" ||
		fail "Redis $name did not start; see $d/out.log"
}

start_redis() {
	local port
	fresh_port; port=$PORT
	redis_server redis "$port"
	REDIS_ADDR=127.0.0.1:$port
	log "Redis listens on $REDIS_ADDR"
}

# start_sentinel: a primary (redis-primary), its replica (redis-replica) and
# three Sentinels (sentinel1..3) that watch it as "gopush".
start_sentinel() {
	local primary replica i port d
	fresh_port; primary=$PORT
	fresh_port; replica=$PORT
	redis_server redis-primary "$primary"
	redis_server redis-replica "$replica" --replicaof 127.0.0.1 "$primary"
	SENTINEL=
	for i in 1 2 3; do
		fresh_port; port=$PORT
		d=$DIR/sentinel$i
		rm -rf "$d"
		mkdir -p "$d"
		echo "$port" > "$d/port"
		# A Sentinel rewrites its configuration file: it must be its own.
		cat > "$d/sentinel.conf" <<-CFG
		bind 127.0.0.1
		port $port
		dir $d
		sentinel resolve-hostnames no
		sentinel monitor gopush 127.0.0.1 $primary 2
		sentinel down-after-milliseconds gopush 1000
		sentinel failover-timeout gopush 5000
		sentinel parallel-syncs gopush 1
		CFG
		spawn "$DIR/sentinel$i.pid" "$d/out.log" redis-server "$d/sentinel.conf" --sentinel
		wait_for 30 "Sentinel $i on 127.0.0.1:$port" redis_ping_alive "sentinel$i" "$port" ||
			fail "Sentinel $i did not start; see $d/out.log"
		SENTINEL+="${SENTINEL:+,}127.0.0.1:$port"
	done
	SENTINEL="sentinel@$SENTINEL/gopush"
	log "Redis primary 127.0.0.1:$primary, replica 127.0.0.1:$replica, Sentinels $SENTINEL"
}

redis_ping_alive() { alive "$DIR/$1.pid" || return 2; redis_ping "$2"; }

start_mysql() {
	local d=$DIR/mysql port
	fresh_port; port=$PORT
	rm -rf "$d"
	mkdir -p "$d"
	echo "$port" > "$d/port"
	# mariadb-install-db runs in its own process group too, so that stop
	# finds its bootstrap server if this script dies while it runs.
	spawn "$DIR/mysql-install.pid" "$d/install.log" mariadb-install-db --no-defaults \
		--datadir="$d/data" --user=root --auth-root-authentication-method=normal \
		--skip-test-db
	wait_for 120 "mariadb-install-db" not_alive "$DIR/mysql-install.pid" ||
		fail "mariadb-install-db did not finish; see $d/install.log"
	rm -f "$DIR/mysql-install.pid"
	[ -d "$d/data/mysql" ] || fail "mariadb-install-db failed; see $d/install.log"
	spawn "$DIR/mysql.pid" "$d/out.log" mariadbd --no-defaults --datadir="$d/data" \
		--socket="$d/sock" --port="$port" --bind-address=127.0.0.1 --user=root \
		--pid-file="$d/mariadbd.pid" --skip-log-bin --max-connections=1000 \
		--innodb-buffer-pool-size=64M --innodb-log-file-size=16M \
		--innodb-flush-log-at-trx-commit=2 --skip-name-resolve
	wait_for 60 "MariaDB on 127.0.0.1:$port" mysql_ping_alive "$d/sock" ||
		fail "MariaDB did not start; see $d/out.log"
	mariadb --no-defaults --socket="$d/sock" -uroot <<-SQL || fail "could not create the MariaDB user"
	CREATE USER IF NOT EXISTS '$MYSQL_USER'@'127.0.0.1' IDENTIFIED BY '$MYSQL_PASS';
	CREATE USER IF NOT EXISTS '$MYSQL_USER'@'localhost' IDENTIFIED BY '$MYSQL_PASS';
	GRANT ALL PRIVILEGES ON *.* TO '$MYSQL_USER'@'127.0.0.1';
	GRANT ALL PRIVILEGES ON *.* TO '$MYSQL_USER'@'localhost';
	SQL
	MYSQL_DSN="$MYSQL_USER:$MYSQL_PASS@tcp(127.0.0.1:$port)/"
	log "MariaDB listens on 127.0.0.1:$port (socket $d/sock)"
}

not_alive() { ! alive "$1"; }
mysql_ping_alive() {
	alive "$DIR/mysql.pid" || return 2
	mariadb --no-defaults --socket="$1" -uroot -e 'SELECT 1' >/dev/null 2>&1
}

# fail stops what this start has started, then exits with an error.
fail() {
	log "error: $*"
	stop_all
	exit 1
}

stop_all() {
	local f
	settle_spawn
	# the daemons first, then an install that may still run
	for f in "$DIR"/sentinel*.pid "$DIR/mysql.pid" "$DIR"/redis*.pid "$DIR"/zk*.pid "$DIR"/*.pid; do
		[ -e "$f" ] && reap "$f" 30
	done
	return 0
}

cmd=${1:-}
[ $# -ge 2 ] || usage
DIR=$2
shift 2

case $cmd in
start)
	want=("$@")
	[ ${#want[@]} -gt 0 ] || want=(zk redis mysql)
	for s in "${want[@]}"; do
		case $s in zk | redis | mysql | zk3 | sentinel) ;; *) usage ;; esac
	done
	mkdir -p "$DIR"
	DIR=$(cd "$DIR" && pwd)
	for f in "$DIR"/*.pid; do
		if [ -e "$f" ] && alive "$f"; then
			die "$DIR already has running services ($(basename "$f")); run: $0 stop $DIR"
		fi
	done
	rm -f "$DIR/env"
	trap 'log "interrupted; stopping what was started"; stop_all; exit 130' INT TERM HUP
	install_missing
	ZK_ADDR= REDIS_ADDR= MYSQL_DSN= ZK_ENSEMBLE= SENTINEL=
	for s in "${want[@]}"; do
		"start_$s"
	done
	{
		printf 'export'
		[ -n "$ZK_ADDR" ] && printf ' GOPUSH_TEST_ZK=%s' "$ZK_ADDR"
		[ -n "$REDIS_ADDR" ] && printf ' GOPUSH_TEST_REDIS=%s' "$REDIS_ADDR"
		[ -n "$MYSQL_DSN" ] && printf " 'GOPUSH_TEST_MYSQL=%s'" "$MYSQL_DSN"
		[ -n "$ZK_ENSEMBLE" ] && printf ' GOPUSH_TEST_ZK_ENSEMBLE=%s' "$ZK_ENSEMBLE"
		[ -n "$SENTINEL" ] && printf " 'GOPUSH_TEST_SENTINEL=%s'" "$SENTINEL"
		printf '\n'
	} > "$DIR/env.tmp"
	mv "$DIR/env.tmp" "$DIR/env"
	trap - INT TERM HUP
	;;
stop)
	[ -d "$DIR" ] || exit 0
	DIR=$(cd "$DIR" && pwd)
	stop_all
	rm -f "$DIR/env"
	;;
*)
	usage
	;;
esac
