#!/usr/bin/env bash
# Private ZooKeeper, Redis and MariaDB for tests and `make run`.
#
#   scripts/services.sh start DIR [zk] [redis] [mysql]   (default: all three)
#   scripts/services.sh stop DIR
#
# start installs what is missing (Debian), then starts each service on a free
# loopback port with all of its files under DIR, waits until each answers,
# and writes DIR/env:
#
#   export GOPUSH_TEST_ZK=127.0.0.1:P GOPUSH_TEST_REDIS=127.0.0.1:P \
#          'GOPUSH_TEST_MYSQL=gopush:gopush@tcp(127.0.0.1:P)/'
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
	log "usage: $0 start DIR [zk] [redis] [mysql] | stop DIR"
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

start_zk() {
	local d=$DIR/zk port
	port=$(free_port)
	rm -rf "$d/data"
	mkdir -p "$d/conf" "$d/data" "$d/logs"
	cat > "$d/conf/zoo.cfg" <<-CFG
	tickTime=2000
	dataDir=$d/data
	clientPort=$port
	clientPortAddress=127.0.0.1
	admin.enableServer=false
	4lw.commands.whitelist=ruok,stat,srvr,mntr
	CFG
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
	spawn "$DIR/zk.pid" "$d/logs/out.log" java -Xmx256m -XX:+UseSerialGC \
		-Dzookeeper.log.dir="$d/logs" -cp "$cp" \
		org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/conf/zoo.cfg"
	wait_for 60 "ZooKeeper on 127.0.0.1:$port" zk_ruok_alive "$port" ||
		fail "ZooKeeper did not start; see $d/logs/out.log and $d/logs/zk.log"
	ZK_ADDR=127.0.0.1:$port
	log "ZooKeeper listens on $ZK_ADDR"
}

zk_ruok_alive() { alive "$DIR/zk.pid" || return 2; zk_ruok "$1"; }

start_redis() {
	local d=$DIR/redis port
	port=$(free_port)
	rm -rf "$d"
	mkdir -p "$d"
	echo "$port" > "$d/port"
	spawn "$DIR/redis.pid" "$d/out.log" redis-server --bind 127.0.0.1 --port "$port" \
		--save "" --appendonly no --daemonize no --dir "$d" --logfile "" \
		--maxclients 10000
	wait_for 30 "Redis on 127.0.0.1:$port" redis_ping_alive "$port" ||
		fail "Redis did not start; see $d/out.log"
	REDIS_ADDR=127.0.0.1:$port
	log "Redis listens on $REDIS_ADDR"
}

redis_ping_alive() { alive "$DIR/redis.pid" || return 2; redis_ping "$1"; }

start_mysql() {
	local d=$DIR/mysql port
	port=$(free_port)
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
	# the daemons first, then an install that may still run
	for f in "$DIR/mysql.pid" "$DIR/redis.pid" "$DIR/zk.pid" "$DIR"/*.pid; do
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
		case $s in zk | redis | mysql) ;; *) usage ;; esac
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
	ZK_ADDR= REDIS_ADDR= MYSQL_DSN=
	for s in "${want[@]}"; do
		"start_$s"
	done
	{
		printf 'export'
		[ -n "$ZK_ADDR" ] && printf ' GOPUSH_TEST_ZK=%s' "$ZK_ADDR"
		[ -n "$REDIS_ADDR" ] && printf ' GOPUSH_TEST_REDIS=%s' "$REDIS_ADDR"
		[ -n "$MYSQL_DSN" ] && printf " 'GOPUSH_TEST_MYSQL=%s'" "$MYSQL_DSN"
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
