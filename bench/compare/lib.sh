# shellcheck shell=bash
# shellcheck disable=SC2034 # PORT, P50, P99, ERRS ... are the callers'
# bench/compare/lib.sh: helpers shared by load-benchmark scripts, taken from
# bench/mpm/run.sh (process bookkeeping by PID, free ports, CPU accounting
# on a shared machine, wrk output). Source it from bash after `set -euo
# pipefail`. The caller sets PORT_BASE, QUIET_MAX, QUIET_TIMEOUT and
# PATIENCE_END (a $SECONDS value after which wait_quiet no longer waits).

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# gone PID: true when PID no longer runs (absent, zombie or dead: a zombie
# succeeds with kill -0, so read the state from /proc/PID/stat).
gone() {
	local st
	st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 0
	[ "$st" = Z ] || [ "$st" = X ]
}

# wait_gone SECONDS PID...: true when every PID is gone within SECONDS.
wait_gone() {
	local deadline=$((SECONDS + $1)) p alive
	shift
	while :; do
		alive=0
		for p in "$@"; do
			gone "$p" || alive=1
		done
		[ $alive = 0 ] && return 0
		[ $SECONDS -ge $deadline ] && return 1
		sleep 0.1
	done
}

# kill_left PID...: SIGKILL each PID, by PID, that is still running.
kill_left() {
	local p
	for p in "$@"; do
		if ! gone "$p"; then
			log "warning: pid $p still running; SIGKILL"
			kill -KILL "$p" 2>/dev/null || true
		fi
	done
}

# children_of PID: the PIDs of PID's children (all threads').
children_of() {
	cat /proc/"$1"/task/*/children 2>/dev/null || true
}

port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pick_port: sets PORT to a free port from NEXT_PORT (PORT_BASE at first),
# cycling through PORT_BASE .. PORT_BASE+199.
pick_port() {
	local p=${NEXT_PORT:-$PORT_BASE}
	while ! port_free "$p"; do
		p=$((p + 1))
		[ $p -lt $((PORT_BASE + 1000)) ] || die "no free port from $PORT_BASE"
	done
	NEXT_PORT=$((p + 1))
	[ $NEXT_PORT -lt $((PORT_BASE + 200)) ] || NEXT_PORT=$PORT_BASE
	PORT=$p
}

# now_us: wall-clock microseconds (bash 5's EPOCHREALTIME, no fork).
now_us() {
	local t=${EPOCHREALTIME/[.,]/}
	echo "$t"
}

# http_code PORT PATH: the status code of one GET, without forking (bash's
# /dev/tcp; "000" when the connection fails or nothing comes within 1 s).
http_code() {
	local line="" code=000
	if { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null; then
		printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3 2>/dev/null || true
		if IFS= read -r -t 1 line <&3 2>/dev/null; then
			line=${line%$'\r'}
			[[ $line =~ ^HTTP/[0-9.]+\ ([0-9]{3}) ]] && code=${BASH_REMATCH[1]}
		fi
		exec 3<&- 3>&-
	fi
	echo "$code"
}

# to_ms VALUE: wrk latency (850.00us, 1.20ms, 2.01s, 1.00m) in ms.
to_ms() {
	awk -v v="$1" 'BEGIN {
		if (v == "") { print "-"; exit }
		n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
		printf "%.2f", n }'
}

# parse_wrk FILE: sets RPS, P50, P99 (ms), ERRS (socket errors + non-2xx/3xx)
# from the output of wrk --latency.
parse_wrk() {
	local f=$1
	RPS=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$f")
	P50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")
	P99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
	ERRS=$(awk '/Socket errors:/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10}
		/Non-2xx or 3xx responses:/ {n += $NF}
		END {print n + 0}' "$f")
	[ -n "$RPS" ] || die "cannot parse wrk output $f: $(cat "$f")"
}

# median: the median of the numbers on stdin ("-" when none).
median() {
	sort -g | awk '{a[NR] = $1} END {
		if (NR == 0) { print "-"; exit }
		if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# --- CPU accounting, for a shared machine ---------------------------------------
# cpu_now: "BUSY TASKS TOTAL" jiffies over all CPUs, from /proc/stat: busy
# counts interrupts too; tasks is user + nice + system, the time /proc/PID/stat
# charges to processes (softirq work for loopback traffic is charged to no one).
cpu_now() {
	awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit}' /proc/stat
}

# our_cpu PID...: the CPU time of this shell and those processes, with their
# reaped children's (wrk, curl; children that exited), in jiffies.
our_cpu() {
	local p n=0 v
	for p in "$$" "$@"; do
		v=$(awk '{sub(/^.*\) /, ""); print $12 + $13 + $14 + $15}' "/proc/$p/stat" 2>/dev/null) || continue
		n=$((n + ${v:-0}))
	done
	echo "$n"
}

# foreign_pct C0 C1 O0 O1: the share (%) of all CPUs that others used between
# two cpu_now samples ("BUSY TASKS TOTAL") given our_cpu before and after.
foreign_pct() {
	local -a a b
	read -r -a a <<<"$1"
	read -r -a b <<<"$2"
	awk -v busy=$((b[1] - a[1])) -v t=$((b[2] - a[2])) -v o=$(($4 - $3)) \
		'BEGIN {f = (t > 0 ? (busy - o) * 100 / t : 0); if (f < 0) f = 0; printf "%.0f", f}'
}

# wait_quiet: wait up to QUIET_TIMEOUT s until the machine is busy less than
# QUIET_MAX % over one second (call it when nothing of ours runs).
wait_quiet() {
	local start=$SECONDS a b busy logged=0
	[ $SECONDS -lt "$PATIENCE_END" ] || return 0
	while :; do
		read -r -a a < <(cpu_now)
		sleep 1
		read -r -a b < <(cpu_now)
		busy=$(((b[0] - a[0]) * 100 / (b[2] - a[2] + 1)))
		[ "$busy" -lt "$QUIET_MAX" ] && return 0
		if [ $((SECONDS - start)) -ge "$QUIET_TIMEOUT" ]; then
			log "warning: the machine is still ${busy}% busy after ${QUIET_TIMEOUT}s; measuring anyway"
			return 0
		fi
		if [ $logged = 0 ]; then
			log "the machine is ${busy}% busy with other work; waiting (up to ${QUIET_TIMEOUT}s) for it to calm down"
			logged=1
		fi
	done
}

# --- the server a script started, and its end ------------------------------------
# stop_server: SIGTERM the server this shell started in the foreground
# (CUR_PID), wait for it, then for its children (CUR_CHILDREN, the last
# known, and those it has now) to follow; SIGKILL, by PID, whatever is left.
stop_server() {
	local pid=${CUR_PID:-} kids=${CUR_CHILDREN:-}
	CUR_PID="" CUR_CHILDREN=""
	[ -n "$pid" ] || return 0
	kids="$kids $(children_of "$pid")"
	kill -TERM "$pid" 2>/dev/null || true
	wait_gone 15 "$pid" || kill_left "$pid"
	wait "$pid" 2>/dev/null || true
	# The children must follow their master; a straggler is a finding.
	# shellcheck disable=SC2086
	if [ -n "${kids// /}" ] && ! wait_gone 10 $kids; then
		# shellcheck disable=SC2086
		kill_left $kids
	fi
}

# stop_pids: SIGTERM every server in PIDS (a script that runs several at
# once puts them there), wait for them and their children; SIGKILL, by PID,
# whatever is left.
stop_pids() {
	local p kids=""
	[ -n "${PIDS+x}" ] && [ ${#PIDS[@]} -gt 0 ] || return 0
	for p in "${PIDS[@]}"; do
		kids="$kids $(children_of "$p")"
		kill -TERM "$p" 2>/dev/null || true
	done
	wait_gone 30 "${PIDS[@]}" || kill_left "${PIDS[@]}"
	PIDS=()
	# shellcheck disable=SC2086
	[ -z "${kids// /}" ] || wait_gone 15 $kids || kill_left $kids
}

# end_run RC: the EXIT trap's work: stop the load generator (LOAD_PID) and
# the servers (stop_server, stop_pids), remove TMP unless KEEP_TMP=1 or the
# run failed, exit RC.
end_run() {
	local rc=$1
	trap - EXIT INT TERM
	if [ -n "${LOAD_PID:-}" ]; then
		kill -TERM "$LOAD_PID" 2>/dev/null || true
		wait "$LOAD_PID" 2>/dev/null || true
	fi
	stop_server
	stop_pids
	if [ -n "${TMP:-}" ] && [ -d "$TMP" ]; then
		if [ "${KEEP_TMP:-0}" = 1 ] || { [ "$rc" != 0 ] && [ "$rc" != 130 ] && [ "$rc" != 143 ]; }; then
			log "kept $TMP"
		else
			rm -rf "$TMP"
		fi
	fi
	exit "$rc"
}

# --- configurations and findings shared by the scripts -------------------------
# nginx_http_common DIR: the lines every nginx http block of the benches
# starts with: files as nginx serves them fastest, no access log, keep-alive
# as phased's, temp paths in DIR/tmp.
nginx_http_common() {
	cat <<EOF
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 60s;
    keepalive_timeout 5s;
    keepalive_requests 1000000;
    client_body_temp_path $1/tmp/body;
    proxy_temp_path $1/tmp/proxy;
    fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi;
    scgi_temp_path $1/tmp/scgi;
EOF
}

# collect_warnings DIR LABEL: append to $TMP/warnings.txt, each line after
# LABEL, the warnings and errors a server logged in DIR/error.log (phased's
# JSON records, nginx's and Apache's levels) and what it wrote to
# DIR/stderr.log.
collect_warnings() {
	local dir=$1 label=$2
	if [ -f "$dir/error.log" ]; then
		grep -E '"level":"(WARN|ERROR)"|:(warn|error|crit|alert|emerg)\]|\[(warn|error|crit|alert|emerg)\]' "$dir/error.log" |
			sed "s/^/$label: /" >>"$TMP/warnings.txt" || true
	fi
	if [ -s "$dir/stderr.log" ]; then
		sed "s/^/$label (stderr): /" "$dir/stderr.log" >>"$TMP/warnings.txt"
	fi
}

# install_missing PROGRAM=PACKAGE...: installs (as root, from Debian) the
# package of each program that is missing; PROGRAM is a name on PATH or an
# absolute path. Not root and something missing: dies saying what.
install_missing() {
	local need=() spec prog
	for spec in "$@"; do
		prog=${spec%%=*}
		if [[ $prog == /* ]]; then
			[ -x "$prog" ] && continue
		else
			command -v "$prog" >/dev/null 2>&1 && continue
		fi
		# shellcheck disable=SC2206 # one program may need several packages
		need+=(${spec#*=})
	done
	[ ${#need[@]} -gt 0 ] || return 0
	[ "$(id -u)" = 0 ] || die "missing ${need[*]}; install them (apt-get install -y ${need[*]}) or run as root"
	log "installing ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

# show_warnings: prints the first 20 of the servers' warnings and errors that
# collect_warnings gathered in $TMP/warnings.txt, if any.
show_warnings() {
	[ -s "$TMP/warnings.txt" ] || return 0
	echo
	echo "Server warnings and errors ($(wc -l <"$TMP/warnings.txt") lines; first 20):"
	head -20 "$TMP/warnings.txt"
}

# md_configs: each file of $TMP/configs as a folded block of a results file.
md_configs() {
	local c
	for c in "$TMP"/configs/*; do
		[ -f "$c" ] || continue
		echo
		echo "<details><summary>$(basename "$c")</summary>"
		echo
		echo '```'
		cat "$c"
		echo '```'
		echo
		echo "</details>"
	done
}

# md_warnings: the servers' warnings and errors (the first 50) as a section of
# a results file, if there were any.
md_warnings() {
	[ -s "$TMP/warnings.txt" ] || return 0
	echo
	echo "## Server warnings and errors"
	echo
	echo '```'
	head -50 "$TMP/warnings.txt"
	echo '```'
}

# make_www: the document root every bench serves, $TMP/www (set as WWW),
# with hello.txt (6 bytes) and 4k.bin (4096: "0123456789abcdef" 256 times),
# and $TMP/configs for the configs a run writes.
make_www() {
	WWW=$TMP/www
	mkdir -p "$WWW" "$TMP/configs"
	printf 'hello\n' >"$WWW/hello.txt"
	for _ in $(seq 256); do printf '0123456789abcdef'; done >"$WWW/4k.bin"
	[ "$(stat -c %s "$WWW/4k.bin")" = 4096 ] || die "4k.bin is not 4096 bytes"
	chmod 755 "$WWW"
	chmod 644 "$WWW/hello.txt" "$WWW/4k.bin"
}

