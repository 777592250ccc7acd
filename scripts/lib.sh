# shellcheck shell=bash
# Helpers shared by services.sh and run.sh. Source it; it defines functions only.
#
# Every long-running process is started by spawn, which puts it in a session
# (and process group) of its own and has the process itself write
# "<pid> <start time>" to a pid file before it execs. So the pid file exists
# even if the script that started it is killed a moment later, and reap can
# tell the process apart from an unrelated one that reused the pid.

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# proc_start PID: the process's start time in clock ticks since boot, or
# nothing when there is no such process.
proc_start() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	stat=${stat##*) }          # drop "pid (comm) "; comm may hold spaces
	# shellcheck disable=SC2086
	set -- $stat
	printf '%s' "${20}"        # field 22 of stat, 20th after comm
}

# spawn PIDFILE LOGFILE CMD...: start CMD in the background in a new session,
# stdin from /dev/null, stdout and stderr to LOGFILE.
spawn() {
	local pidfile=$1 logfile=$2
	shift 2
	setsid bash -c '
		read -r -a st < <(sed "s/^.*) //" /proc/$$/stat)
		echo "$$ ${st[19]}" > "$0.tmp" && mv "$0.tmp" "$0"
		exec "$@"' "$pidfile" "$@" </dev/null >>"$logfile" 2>&1 &
	# Until the pid file is written, a signal's trap cannot find this
	# process through it: settle_spawn does (see there).
	SPAWN_PID=$! SPAWN_PIDFILE=$pidfile
	local i
	for i in $(seq 1 600); do   # 30 s: bash starts slowly on a loaded machine
		if [ -s "$pidfile" ]; then
			SPAWN_PID= SPAWN_PIDFILE=
			return 0
		fi
		sleep 0.05
	done
	die "$* did not start (no $pidfile)"
}

# settle_spawn: when a trap interrupts spawn before the new process wrote
# its pid file, wait (up to 5 s) for the file so that reap finds it, or
# kill the process outright when it never comes. Call it before reaping.
settle_spawn() {
	local i
	[ -n "${SPAWN_PID:-}" ] || return 0
	for i in $(seq 1 50); do
		[ -s "$SPAWN_PIDFILE" ] && break
		kill -0 "$SPAWN_PID" 2>/dev/null || break
		sleep 0.1
	done
	[ -s "$SPAWN_PIDFILE" ] || kill -KILL "$SPAWN_PID" 2>/dev/null || true
	SPAWN_PID= SPAWN_PIDFILE=
}

# started_at PID START: true when process PID runs and started at START
# (clock ticks since boot, as proc_start prints). It forks nothing and uses
# no $(...): the wait loops call it many times a second, and a signal whose
# trap fires while bash is busy with a command substitution can be lost
# (seen once in bash 5.2: "trap: unexpected EOF while looking for `)'").
started_at() {
	local stat
	local -a field
	read -r stat 2>/dev/null < "/proc/$1/stat" || return 1
	stat=${stat##*) }
	read -r -a field <<<"$stat"
	[ "${field[19]:-}" = "$2" ]
}

# alive PIDFILE: true when the process named in PIDFILE still runs.
alive() {
	local pid start
	[ -s "$1" ] || return 1
	read -r pid start < "$1" || return 1
	[ -n "$pid" ] && started_at "$pid" "$start"
}

# reap PIDFILE [SECONDS]: stop the process group started by spawn: SIGTERM,
# wait up to SECONDS (default 30), then SIGKILL. Removes PIDFILE.
reap() {
	local pidfile=$1 wait=${2:-30} pid start i
	[ -e "$pidfile" ] || return 0
	read -r pid start < "$pidfile" || true
	if [ -n "$pid" ] && started_at "$pid" "$start"; then
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq 1 $((wait * 10))); do
			group_alive "$pid" "$start" || break
			sleep 0.1
		done
		if group_alive "$pid" "$start"; then
			log "$(basename "$pidfile" .pid) (pid $pid) did not stop in ${wait}s; killing it"
			kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
			for i in $(seq 1 50); do
				group_alive "$pid" "$start" || break
				sleep 0.1
			done
		fi
	fi
	rm -f "$pidfile"
}

# group_alive PID START: the leader still runs, or any process is left in its
# process group (children that a helper such as mariadb-install-db started).
group_alive() {
	started_at "$1" "$2" && return 0
	pgrep -g "$1" >/dev/null 2>&1
}

# port_busy PORT: something listens on 127.0.0.1:PORT (or on any address).
port_busy() {
	if command -v ss >/dev/null 2>&1; then
		[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# free_port: a loopback port that nothing listens on, below the kernel's
# ephemeral range so that outgoing connections never take it meanwhile.
free_port() {
	local p i
	for i in $(seq 1 200); do
		p=$((20000 + RANDOM % 12000))
		port_busy "$p" || { echo "$p"; return 0; }
	done
	die "no free port found"
}

# wait_for SECONDS WHAT CMD...: run CMD every 0.2 s until it succeeds. CMD
# returning 2 means it never will (the process died): give up at once.
wait_for() {
	local secs=$1 what=$2 i rc
	shift 2
	for i in $(seq 1 $((secs * 5))); do
		rc=0
		"$@" || rc=$?
		[ $rc = 0 ] && return 0
		if [ $rc = 2 ]; then
			log "$what stopped while starting"
			return 1
		fi
		sleep 0.2
	done
	log "$what was not ready after ${secs}s"
	return 1
}

# apt_install PKG...: install Debian packages, with `apt-get update` first.
# A policy-rc.d that answers "no" keeps the packages from starting their
# system-wide services (mariadb, redis, nginx, zookeeper) while installing.
apt_install() {
	[ $# -gt 0 ] || return 0
	[ "$(id -u)" = 0 ] || die "missing $*; run as root to install them, or: apt-get install $*"
	command -v apt-get >/dev/null || die "missing $*, and there is no apt-get to install them with"
	log "installing $*"
	local policy=/usr/sbin/policy-rc.d made_policy= rc=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1
	fi
	# The package lists are refreshed once per make target: the scripts it
	# runs inherit GOPUSH_APT_UPDATED.
	if [ -z "${GOPUSH_APT_UPDATED:-}" ]; then
		apt-get update -qq >&2 && export GOPUSH_APT_UPDATED=1 || rc=$?
	fi
	[ $rc != 0 ] || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "$@"; } >&2 || rc=$?
	if [ -n "$made_policy" ]; then rm -f "$policy"; fi
	[ $rc = 0 ] || die "apt-get install $* failed"
}
