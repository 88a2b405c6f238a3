#!/usr/bin/env bash
# bench/mpm/run.sh: requests/s and p99 of each phased MPM against a
# single-process net/http server and Apache httpd's prefork, in one run.
#
#   bench/mpm/run.sh                 # 3 interleaved rounds, table on stdout and in bench/mpm/RESULTS.md
#   ROUNDS=1 DURATION=5 bench/mpm/run.sh   # a quick look
#
# Each target serves the same 6-byte file (hello.txt, "hello\n") from a temp
# document root on 127.0.0.1 and is loaded with
#   wrk -t1 -c50 -d10s --latency http://127.0.0.1:PORT/hello.txt
# after its first 200 and a 2 s warm-up. Targets:
#
#   phased-prefork  start 4, min/max spare 2/8, max_request_workers 64
#   phased-worker   start 2, 25 threads per child, min/max spare threads 25/75, max_request_workers 150
#   phased-event    as worker
#   bare-go         bench/mpm/bare: one process, http.FileServer
#   bare-static     bench/mpm/bare -handler static: one process, phased's own
#                   static handler (core/child/static), so that phased-worker/event
#                   against it is the cost of the MPM alone
#   apache-prefork  Apache httpd's prefork: StartServers 4, Min/MaxSpareServers 2/8,
#                   ServerLimit/MaxRequestWorkers 64, KeepAlive On, MaxKeepAliveRequests 0
#
# Prefork and keep-alive: in both prefork servers a keep-alive connection
# holds a whole child for its life, so wrk's 50 keep-alive connections need
# 50 children. Both are tested with keep-alive (as a browser or a proxy would
# talk to them) and the same ceiling of 64 children, and both start from 4
# children and grow by their own maintenance (Apache's 1, 2, 4 ... 32 a
# second). Their warm-up therefore lasts until the server has at least 50
# children (RAMP_TIMEOUT at most), and the time that took is reported
# (column "ramp s"). Apache's MaxKeepAliveRequests is 0 (unlimited), as in
# phased, so neither closes connections during the run. Unless CLOSE=0 both
# prefork servers are also measured without keep-alive (wrk sends
# "Connection: close"), as extra targets phased-prefork-close and
# apache-prefork-close.
#
# The round of all targets runs ROUNDS times, the order rotated by one each
# round; the table gives each target's median. RSS is read from
# /proc/PID/status (VmRSS) of every serving process right after the load:
# the children of the master for phased and Apache (from
# /proc/PID/task/*/children), the process itself for bare-go.
#
# Environment: ROUNDS (3), DURATION (10, seconds), WARMUP (2, seconds),
# CONNS (50), RAMP_TIMEOUT (40, seconds), CLOSE (1), PORT_BASE (18400),
# RESULTS (bench/mpm/RESULTS.md; "-" for none), KEEP_TMP (0: the temp dir
# is kept only when the run fails), ONLY (a space-separated subset of the
# targets, e.g. ONLY="phased-event bare-go"), BINARY (the phased binary,
# bin/phased: built when missing), OTHER_PHASED (another phased
# binary: adds targets phased-prefork-b and phased-prefork-b-close, the
# prefork targets served by it, for an A/B of two builds in one run; they
# are in the default set only when OTHER_PHASED is set), QUIET_MAX (15) and
# QUIET_TIMEOUT (120): before each target starts, wait up to QUIET_TIMEOUT
# seconds for the machine to be busy less than QUIET_MAX % (of all CPUs,
# over 1 s) with nothing of ours running.
#
# The machine may be shared: column "foreign CPU %" is the share of all
# CPUs that processes other than this run's used during each measurement
# (from /proc/stat, minus the server's processes and wrk); a round with a
# high figure measured a loaded machine. A measurement during which others
# used more than FOREIGN_MAX % (10) is taken again, up to RETRIES (2) times;
# the last attempt is kept either way. After PATIENCE (20) minutes the run
# neither waits for quiet nor measures again.
# Needs root only to install wrk and apache2 when they are missing, and
# to run Apache (its children run as www-data).
set -euo pipefail
# Helpers shared with bench/compare (log, die, process bookkeeping, ports,
# CPU accounting, median); the functions defined below override its others.
# shellcheck source=bench/compare/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../compare/lib.sh"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-50}
RAMP_TIMEOUT=${RAMP_TIMEOUT:-40}
CLOSE=${CLOSE:-1}
PORT_BASE=${PORT_BASE:-18400}
RESULTS=${RESULTS:-$REPO/bench/mpm/RESULTS.md}
KEEP_TMP=${KEEP_TMP:-0}
QUIET_MAX=${QUIET_MAX:-15}
QUIET_TIMEOUT=${QUIET_TIMEOUT:-120}
FOREIGN_MAX=${FOREIGN_MAX:-10}
RETRIES=${RETRIES:-2}
PATIENCE=${PATIENCE:-20}
ONLY=${ONLY:-}
PHASED=${BINARY:-$REPO/bin/phased}
OTHER_PHASED=${OTHER_PHASED:-}
APACHE=/usr/sbin/apache2
APACHE_MODULES=/usr/lib/apache2/modules
COMMAND="$0${*:+ $*}"
for v in ROUNDS DURATION WARMUP CONNS RAMP_TIMEOUT CLOSE PORT_BASE KEEP_TMP QUIET_MAX QUIET_TIMEOUT FOREIGN_MAX RETRIES PATIENCE; do
	if ! [[ ${!v} =~ ^[0-9]+$ ]]; then
		echo "run.sh: $v must be a whole number, not '${!v}'" >&2
		exit 2
	fi
done
env_desc=""
for v in ROUNDS DURATION WARMUP CONNS RAMP_TIMEOUT CLOSE; do
	env_desc+="$v=${!v} "
done
[ -z "${ONLY:-}" ] || env_desc+="ONLY='$ONLY' "
[ -z "$OTHER_PHASED" ] || env_desc+="OTHER_PHASED=$OTHER_PHASED "
[ -z "${BINARY:-}" ] || env_desc+="BINARY=$BINARY "


# --- what this script started, for the trap --------------------------------
TMP=""
CUR_PID=""       # a server process this shell started (phased master, bare-go)
CUR_APACHE=""    # the httpd.conf of a running Apache
CUR_CHILDREN=""  # the last known children of the current server
WRK_PID=""





stop_current() {
	local pid=$CUR_PID conf=$CUR_APACHE kids=$CUR_CHILDREN apid=""
	CUR_PID="" CUR_APACHE="" CUR_CHILDREN=""
	if [ -n "$pid" ]; then
		kids="$kids $(children_of "$pid")"
		kill -TERM "$pid" 2>/dev/null || true
		if ! wait_gone 15 "$pid"; then
			kill_left "$pid"
		fi
		wait "$pid" 2>/dev/null || true
	fi
	if [ -n "$conf" ]; then
		apid=$(cat "$(dirname "$conf")/httpd.pid" 2>/dev/null || true)
		[ -n "$apid" ] && kids="$kids $(children_of "$apid")"
		"$APACHE" -f "$conf" -k stop >/dev/null 2>&1 || true
		if [ -n "$apid" ] && ! wait_gone 15 "$apid"; then
			kill_left "$apid"
		fi
	fi
	# The children must follow their master; a straggler is a finding.
	# shellcheck disable=SC2086
	if [ -n "${kids// /}" ] && ! wait_gone 10 $kids; then
		# shellcheck disable=SC2086
		kill_left $kids
	fi
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$WRK_PID" ]; then
		kill -TERM "$WRK_PID" 2>/dev/null || true
		wait "$WRK_PID" 2>/dev/null || true
	fi
	stop_current
	if [ -n "$TMP" ] && [ -d "$TMP" ]; then
		if [ "$KEEP_TMP" = 1 ] || { [ $rc != 0 ] && [ $rc != 130 ] && [ $rc != 143 ]; }; then
			log "kept $TMP"
		else
			rm -rf "$TMP"
		fi
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. tools ----------------------------------------------------------------
install_missing wrk=wrk "$APACHE=apache2 apache2-utils"
command -v go >/dev/null 2>&1 || die "go is not on PATH"
[ "$(id -u)" = 0 ] || die "Apache is started as root here (its children switch to www-data): run as root"

# --- 2. binaries ----------------------------------------------------------------
if [ ! -x "$PHASED" ] && [ -z "${BINARY:-}" ]; then
	log "building bin/phased"
	make -C "$REPO" build >/dev/null
fi
TMP=$(mktemp -d /tmp/phased-bench-mpm.XXXXXX)
chmod 755 "$TMP" # Apache's children (www-data) read the document root
# A copy, so that a rebuild of bin/phased during the run changes nothing.
if [ -n "${BINARY:-}" ]; then
	[ -x "$PHASED" ] || die "BINARY: $PHASED is not an executable"
	PHASED_DESC="BINARY=$PHASED built $(date -u -r "$PHASED" '+%Y-%m-%d %H:%M UTC')"
else
	PHASED_DESC="$(cd "$REPO" && git describe --always --dirty 2>/dev/null || echo unknown), bin/phased built $(date -u -r "$PHASED" '+%Y-%m-%d %H:%M UTC')"
fi
cp "$PHASED" "$TMP/phased"
PHASED=$TMP/phased
OTHER_DESC=""
if [ -n "$OTHER_PHASED" ]; then
	[ -x "$OTHER_PHASED" ] || die "OTHER_PHASED: $OTHER_PHASED is not an executable"
	OTHER_DESC="$OTHER_PHASED built $(date -u -r "$OTHER_PHASED" '+%Y-%m-%d %H:%M UTC')"
	cp "$OTHER_PHASED" "$TMP/phased-b"
	OTHER_PHASED=$TMP/phased-b
fi
log "building bench/mpm/bare"
(cd "$REPO" && go build -o "$TMP/bare" ./bench/mpm/bare)

# --- 3. document root -------------------------------------------------------------
mkdir -p "$TMP/www"
printf 'hello\n' >"$TMP/www/hello.txt"
chmod 755 "$TMP/www"
chmod 644 "$TMP/www/hello.txt"

# --- 4. targets ------------------------------------------------------------------
ALL_TARGETS=(phased-prefork phased-worker phased-event bare-go bare-static apache-prefork phased-prefork-close apache-prefork-close)
[ -z "$OTHER_PHASED" ] || ALL_TARGETS+=(phased-prefork-b phased-prefork-b-close)
if [ -n "$ONLY" ]; then
	read -r -a TARGETS <<<"$ONLY"
	for t in "${TARGETS[@]}"; do
		[[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || die "ONLY: unknown target $t (${ALL_TARGETS[*]})"
	done
elif [ "$CLOSE" = 1 ]; then
	TARGETS=("${ALL_TARGETS[@]}")
else
	TARGETS=()
	for t in "${ALL_TARGETS[@]}"; do
		[[ $t == *-close ]] || TARGETS+=("$t")
	done
fi
for t in "${TARGETS[@]}"; do
	[[ $t != phased-prefork-b* ]] || [ -n "$OTHER_PHASED" ] || die "target $t needs OTHER_PHASED (another phased binary)"
done

NEXT_PORT=$PORT_BASE
pick_port() {
	local p=$NEXT_PORT
	while ! port_free "$p"; do
		p=$((p + 1))
		[ $p -lt $((PORT_BASE + 1000)) ] || die "no free port from $PORT_BASE"
	done
	NEXT_PORT=$((p + 1))
	[ $NEXT_PORT -lt $((PORT_BASE + 200)) ] || NEXT_PORT=$PORT_BASE
	PORT=$p
}

phased_conf() { # NAME MPM PORT DIR [BINARY]
	local name=$1 mpm=$2 port=$3 dir=$4 bin=${5:-$PHASED}
	mkdir -p "$dir"
	{
		cat <<EOF
server_root: $dir
listen: ["127.0.0.1:$port"]
pid_file: $dir/phased.pid
document_root: $TMP/www
error_log: {path: $dir/error.log, level: warn, format: json}
access_log: {path: ""}
EOF
		case $mpm in
		prefork)
			cat <<EOF
mpm:
  name: prefork
  start_servers: 4
  min_spare_servers: 2
  max_spare_servers: 8
  server_limit: 64
  max_request_workers: 64
EOF
			;;
		worker | event)
			cat <<EOF
mpm:
  name: $mpm
  start_servers: 2
  threads_per_child: 25
  min_spare_threads: 25
  max_spare_threads: 75
  max_request_workers: 150
EOF
			;;
		esac
	} >"$dir/phased.yaml"
	"$bin" -f "$dir/phased.yaml" -t >/dev/null 2>"$dir/check.log" ||
		die "$name: phased -t rejects $dir/phased.yaml: $(cat "$dir/check.log")"
}

apache_conf() { # PORT DIR
	local port=$1 dir=$2
	mkdir -p "$dir"
	cat >"$dir/httpd.conf" <<EOF
ServerRoot $dir
ServerName 127.0.0.1
Listen 127.0.0.1:$port
LoadModule mpm_prefork_module $APACHE_MODULES/mod_mpm_prefork.so
LoadModule authz_core_module $APACHE_MODULES/mod_authz_core.so
LoadModule mime_module $APACHE_MODULES/mod_mime.so
# mod_unixd and mod_log_config are compiled in; no CustomLog: no access log
User www-data
Group www-data
PidFile $dir/httpd.pid
DefaultRuntimeDir $dir
Mutex file:$dir default
ErrorLog $dir/error.log
LogLevel warn
TypesConfig /etc/mime.types
DocumentRoot $TMP/www
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory $TMP/www>
    Require all granted
</Directory>
HostnameLookups Off
EnableSendfile On
KeepAlive On
KeepAliveTimeout 5
MaxKeepAliveRequests 0
Timeout 60
StartServers 4
MinSpareServers 2
MaxSpareServers 8
ServerLimit 64
MaxRequestWorkers 64
MaxConnectionsPerChild 0
EOF
	"$APACHE" -f "$dir/httpd.conf" -t >/dev/null 2>"$dir/check.log" ||
		die "apache: $APACHE -t rejects $dir/httpd.conf: $(cat "$dir/check.log")"
}

# start TARGET DIR: starts TARGET on a free port; sets PORT, MASTER.
start_target() {
	local t=$1 dir=$2
	pick_port
	case $t in
	phased-prefork*)
		local bin=$PHASED
		[[ $t != phased-prefork-b* ]] || bin=$OTHER_PHASED
		phased_conf "$t" prefork "$PORT" "$dir" "$bin"
		"$bin" -f "$dir/phased.yaml" >>"$dir/stderr.log" 2>&1 &
		CUR_PID=$!
		MASTER=$CUR_PID
		;;
	phased-worker | phased-event)
		phased_conf "$t" "${t#phased-}" "$PORT" "$dir"
		"$PHASED" -f "$dir/phased.yaml" >>"$dir/stderr.log" 2>&1 &
		CUR_PID=$!
		MASTER=$CUR_PID
		;;
	bare-go | bare-static)
		mkdir -p "$dir"
		local handler=fileserver
		[ "$t" = bare-static ] && handler=static
		"$TMP/bare" -addr "127.0.0.1:$PORT" -root "$TMP/www" -handler "$handler" >>"$dir/stderr.log" 2>&1 &
		CUR_PID=$!
		MASTER=$CUR_PID
		;;
	apache-prefork*)
		apache_conf "$PORT" "$dir"
		CUR_APACHE=$dir/httpd.conf
		"$APACHE" -f "$dir/httpd.conf" -k start >>"$dir/stderr.log" 2>&1 ||
			die "$t: apache2 -k start failed: $(cat "$dir/stderr.log" "$dir/error.log" 2>/dev/null)"
		local _
		for _ in $(seq 100); do
			[ -s "$dir/httpd.pid" ] && break
			sleep 0.05
		done
		MASTER=$(cat "$dir/httpd.pid" 2>/dev/null) || die "$t: no pid file"
		;;
	*) die "unknown target $t" ;;
	esac
	# Wait for the first 200.
	local deadline=$((SECONDS + 20)) code
	while :; do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$PORT/hello.txt" || true)
		[ "$code" = 200 ] && break
		if [ -n "$CUR_PID" ] && gone "$CUR_PID"; then
			die "$t exited before serving: $(tail -5 "$dir/stderr.log" "$dir/error.log" 2>/dev/null)"
		fi
		[ $SECONDS -lt $deadline ] || die "$t: no 200 on port $PORT within 20 s (last code $code)"
		sleep 0.05
	done
}

# serving_pids TARGET: the processes that serve requests.
# phased's master also runs its MPM as a plugin process (phased
# --internal-plugin mpm NAME), which serves nothing.
serving_pids() {
	local p
	case $1 in
	bare-*) echo "$MASTER" ;;
	*)
		for p in $(children_of "$MASTER"); do
			[ -r "/proc/$p/cmdline" ] || continue
			tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -q -- '--internal-plugin' || echo "$p"
		done
		;;
	esac
}

# helper_pids TARGET: the master's other children (phased's MPM plugin).
helper_pids() {
	local p
	case $1 in
	phased-*)
		for p in $(children_of "$MASTER"); do
			[ -r "/proc/$p/cmdline" ] || continue
			! tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -q -- '--internal-plugin' || echo "$p"
		done
		;;
	esac
}

nprocs() {
	# shellcheck disable=SC2046
	set -- $(serving_pids "$1")
	echo $#
}

WRK_ARGS=()
wrk_args() {
	WRK_ARGS=(-t1 "-c$CONNS" --latency)
	case $1 in
	*-close) WRK_ARGS+=(-H "Connection: close") ;;
	esac
}

# run_wrk SECONDS OUT TARGET: wrk in the background, so that the trap can stop it.
run_wrk() {
	wrk_args "$3"
	wrk "${WRK_ARGS[@]}" "-d$1s" "http://127.0.0.1:$PORT/hello.txt" >"$2" 2>&1 &
	WRK_PID=$!
	wait "$WRK_PID" || die "wrk failed: $(cat "$2")"
	WRK_PID=""
}

# warm TARGET DIR: the warm-up; prefork with keep-alive first waits for CONNS children.
warm() {
	local t=$1 dir=$2 start=$SECONDS n
	RAMP="-"
	case $t in
	phased-prefork | phased-prefork-b | apache-prefork)
		n=$(nprocs "$t")
		while [ "$n" -lt "$CONNS" ]; do
			if [ $((SECONDS - start)) -ge "$RAMP_TIMEOUT" ]; then
				log "warning: $t has $n children after ${RAMP_TIMEOUT}s of load, fewer than $CONNS connections"
				break
			fi
			run_wrk 1 "$dir/ramp.txt" "$t"
			n=$(nprocs "$t")
		done
		RAMP=$((SECONDS - start))
		;;
	esac
	run_wrk "$WARMUP" "$dir/warm.txt" "$t"
}

# to_ms VALUE: wrk latency (850.00us, 1.20ms, 2.01s, 1.00m) in ms.
to_ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
		printf "%.2f", n }'
}

# ctxt: context switches so far on the whole machine (from /proc/stat).
ctxt() { awk '$1 == "ctxt" {print $2}' /proc/stat; }

# parse_wrk FILE: sets RPS, P99, ERRS (socket errors + non-2xx/3xx), NREQ.
parse_wrk() {
	local f=$1
	RPS=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$f")
	NREQ=$(awk '/ requests in / {print $1}' "$f")
	P99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
	ERRS=$(awk '/Socket errors:/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10}
		/Non-2xx or 3xx responses:/ {n += $NF}
		END {print n + 0}' "$f")
	[ -n "$RPS" ] || die "cannot parse wrk output $f: $(cat "$f")"
}

# rss TARGET: sets RSS_MED and PSS_MED (median VmRSS and Pss, KiB, per serving
# process), RSS_TOTAL (KiB, serving processes plus the master and its
# helpers), NPROC.
rss() {
	local t=$1 p v all=() pss=() total=0
	for p in $(serving_pids "$t"); do
		v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
		[ -n "$v" ] || continue
		all+=("$v")
		total=$((total + v))
		v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null) || continue
		[ -z "$v" ] || pss+=("$v")
	done
	NPROC=${#all[@]}
	RSS_MED=$(printf '%s\n' "${all[@]}" | median)
	PSS_MED=$(printf '%s\n' "${pss[@]}" | median)
	if [[ $t != bare-* ]]; then
		for p in "$MASTER" $(helper_pids "$t"); do
			v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
			total=$((total + ${v:-0}))
		done
	fi
	RSS_TOTAL=$total
}




# wait_quiet: wait up to QUIET_TIMEOUT s until the machine is busy less than
# QUIET_MAX % over one second (nothing of ours runs at that point).
wait_quiet() {
	local start=$SECONDS a b busy logged=0
	[ $SECONDS -lt $PATIENCE_END ] || return 0
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

# --- 5. rounds ---------------------------------------------------------------------
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
PATIENCE_END=$((SECONDS + PATIENCE * 60))
RAW=$TMP/raw.tsv # round target rps p99 errors ramp nproc rss_med rss_total foreign pss_med csw_per_req
: >"$RAW"
nt=${#TARGETS[@]}
log "targets: ${TARGETS[*]}; $ROUNDS rounds of wrk -t1 -c$CONNS -d${DURATION}s"
for ((r = 0; r < ROUNDS; r++)); do
	for ((k = 0; k < nt; k++)); do
		t=${TARGETS[$(((k + r) % nt))]}
		for ((attempt = 1; ; attempt++)); do
			dir=$TMP/r$r-$t-a$attempt
			wait_quiet
			start_target "$t" "$dir"
			warm "$t" "$dir"
			# shellcheck disable=SC2046
			set -- $(printf '%s\n' "$MASTER" $(children_of "$MASTER") | sort -u)
			read -r -a c0 < <(cpu_now)
			o0=$(our_cpu "$@")
			x0=$(ctxt)
			run_wrk "$DURATION" "$dir/wrk.txt" "$t"
			x1=$(ctxt)
			# Children started during the load are ours too: all their time is.
			# shellcheck disable=SC2046
			set -- $(printf '%s\n' "$@" $(children_of "$MASTER") | sort -u)
			o1=$(our_cpu "$@")
			read -r -a c1 < <(cpu_now)
			FOREIGN=$(awk -v b=$((c1[1] - c0[1])) -v t=$((c1[2] - c0[2])) -v o=$((o1 - o0)) \
				'BEGIN {f = (t > 0 ? (b - o) * 100 / t : 0); if (f < 0) f = 0; printf "%.0f", f}')
			parse_wrk "$dir/wrk.txt"
			CSW=$(awk -v x=$((x1 - x0)) -v n="${NREQ:-0}" 'BEGIN {printf "%.2f", (n > 0 ? x / n : 0)}')
			rss "$t"
			CUR_CHILDREN=$(children_of "$MASTER")
			log "round $((r + 1)) $t: $RPS req/s, p99 $P99 ms, errors $ERRS, ramp $RAMP s, $NPROC procs, RSS/proc $RSS_MED KiB, foreign CPU $FOREIGN%, $CSW context switches/req"
			stop_current
			if [ "$FOREIGN" -le "$FOREIGN_MAX" ] || [ "$attempt" -gt "$RETRIES" ] || [ $SECONDS -ge $PATIENCE_END ]; then
				break
			fi
			log "round $((r + 1)) $t: other processes used $FOREIGN% of the CPUs (> FOREIGN_MAX $FOREIGN_MAX%): measuring again"
		done
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
			$((r + 1)) "$t" "$RPS" "$P99" "$ERRS" "$RAMP" "$NPROC" "$RSS_MED" "$RSS_TOTAL" "$FOREIGN" "$PSS_MED" "$CSW" >>"$RAW"
		collect_warnings "$dir" "round $((r + 1)) $t"
	done
done

# --- 6. table ------------------------------------------------------------------------
col() { # TARGET COLUMN: the median of that column over the rounds
	awk -F'\t' -v t="$1" -v c="$2" '$2 == t && $c != "-" {print $c}' "$RAW" | median
}
bare_rps=$(col bare-go 3)
static_rps=$(col bare-static 3)
TABLE=$TMP/table.md
{
	echo "| target | req/s (median) | p99 ms (median) | ratio to bare-go | ratio to bare-static | RSS per idle child KiB (median) | PSS per idle child KiB (median) | serving procs | total RSS MiB (with master) | errors (sum) | prefork ramp s (median) | foreign CPU % (max) | context switches/req (median) |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for t in "${TARGETS[@]}"; do
		rps=$(col "$t" 3)
		errs=$(awk -F'\t' -v t="$t" '$2 == t {n += $5} END {print n + 0}' "$RAW")
		awk -v t="$t" -v rps="$rps" -v p99="$(col "$t" 4)" -v bare="$bare_rps" -v static="$static_rps" \
			-v rssm="$(col "$t" 8)" -v pssm="$(col "$t" 11)" -v np="$(col "$t" 7)" -v tot="$(col "$t" 9)" \
			-v errs="$errs" -v ramp="$(col "$t" 6)" -v fmax="$(awk -F'\t' -v t="$t" '$2 == t && $10 > m {m = $10} END {print m + 0}' "$RAW")" \
			-v csw="$(col "$t" 12)" 'BEGIN {
			printf "| %s | %.0f | %.2f | %.3f | %.3f | %.0f | %.0f | %s | %.1f | %s | %s | %s | %s |\n",
				t, rps, p99, (bare > 0 ? rps / bare : 0), (static > 0 ? rps / static : 0),
				rssm, pssm, np, tot / 1024, errs, ramp, fmax, csw }'
	done
} >"$TABLE"

# Targets from the issue.
verdict() { # NAME A B MIN: A/B >= MIN
	if [ "$2" = - ] || [ "$3" = - ]; then
		echo "- $1: not measured in this run"
		return
	fi
	awk -v n="$1" -v a="$2" -v b="$3" -v m="$4" 'BEGIN {
		r = (b > 0 ? a / b : 0)
		printf "- %s: %.3f (needs >= %s): %s\n", n, r, m, (r >= m ? "MET" : "NOT MET") }'
}
VERDICTS=$TMP/verdicts.md
{
	verdict "phased-worker / bare-go" "$(col phased-worker 3)" "$bare_rps" 0.97
	verdict "phased-event / bare-go" "$(col phased-event 3)" "$bare_rps" 0.97
	verdict "phased-worker / bare-static (same handler)" "$(col phased-worker 3)" "$static_rps" 0.97
	verdict "phased-event / bare-static (same handler)" "$(col phased-event 3)" "$static_rps" 0.97
	verdict "phased-prefork / apache-prefork" "$(col phased-prefork 3)" "$(col apache-prefork 3)" 1.5
	if [ -n "$OTHER_PHASED" ]; then
		verdict "phased-prefork-b (OTHER_PHASED) / apache-prefork" "$(col phased-prefork-b 3)" "$(col apache-prefork 3)" 1.5
		verdict "phased-prefork-b (OTHER_PHASED) / phased-prefork" "$(col phased-prefork-b 3)" "$(col phased-prefork 3)" 1
	fi
	if [ "$CLOSE" = 1 ]; then
		verdict "phased-prefork-close / apache-prefork-close" "$(col phased-prefork-close 3)" "$(col apache-prefork-close 3)" 1.5
	fi
} >"$VERDICTS"

echo
cat "$TABLE"
echo
echo "Targets (req/s medians):"
cat "$VERDICTS"
show_warnings

if [ "$RESULTS" != "-" ]; then
	{
		echo "# bench/mpm results"
		echo
		echo "Generated by \`bench/mpm/run.sh\`; do not edit by hand."
		echo
		echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
		echo "- command: \`$env_desc$COMMAND\` (from $(pwd))"
		echo "- kernel: $(uname -r); nproc: $(nproc); load average before the run: $LOADAVG (the machine may be shared)"
		echo "- $(go version)"
		echo "- $(wrk -v 2>&1 | head -1 | sed 's/ Copyright.*//')"
		echo "- $("$APACHE" -v | head -1)"
		echo "- phased: $PHASED_DESC (copied at the start of the run)"
		[ -z "$OTHER_DESC" ] || echo "- phased-prefork-b*: OTHER_PHASED=$OTHER_DESC (copied at the start of the run)"
		echo "- load: \`wrk -t1 -c$CONNS -d${DURATION}s --latency http://127.0.0.1:PORT/hello.txt\` (6-byte file), after the first 200 and a ${WARMUP} s warm-up; *-close targets add \`-H 'Connection: close'\`"
		echo "- $ROUNDS rounds, the order of the targets rotated each round; medians per target"
		echo
		cat "$TABLE"
		echo
		echo "Targets from the issue (ratios of median req/s):"
		echo
		cat "$VERDICTS"
		echo
		echo "Columns: RSS per idle child is the median VmRSS of the serving processes right"
		echo "after the load (bare-go: the one process); total RSS adds the master's and, for"
		echo "phased, its MPM plugin process's (phased --internal-plugin mpm NAME). PSS (from"
		echo "/proc/PID/smaps_rollup) shares pages mapped by several processes among them:"
		echo "the memory one more child really costs."
		echo "errors = wrk's socket errors (connect, read, write, timeout) plus non-2xx/3xx"
		echo "responses, summed over the rounds. prefork ramp = seconds of load until the"
		echo "server had $CONNS children (each keep-alive connection holds a prefork child)."
		echo "foreign CPU = share of all CPUs used by other processes on the machine during a"
		echo "measurement (max over the rounds): above ~10% that round measured a loaded machine."
		echo "context switches/req = the whole machine's context switches (ctxt in /proc/stat)"
		echo "during the load divided by the requests wrk completed: wrk's own included."
		echo
		echo "Settings: phased prefork start_servers 4, min/max_spare_servers 2/8,"
		echo "server_limit = max_request_workers = 64; phased worker and event"
		echo "start_servers 2, threads_per_child 25, min/max_spare_threads 25/75,"
		echo "max_request_workers 150; phased error_log at warn to a file, access log off."
		echo "Apache prefork: StartServers 4, Min/MaxSpareServers 2/8, ServerLimit ="
		echo "MaxRequestWorkers 64, KeepAlive On, KeepAliveTimeout 5, MaxKeepAliveRequests 0,"
		echo "modules mpm_prefork, authz_core, mime (unixd, log_config built in), no access log."
		echo "bare-go: bench/mpm/bare, http.FileServer in one process; bare-static: bench/mpm/bare"
		echo "-handler static, phased's core/child/static handler in one process (the handler"
		echo "phased's children serve with), both with phased's default timeouts."
		echo
		echo "## Every round"
		echo
		echo "| round | target | req/s | p99 ms | errors | ramp s | serving procs | RSS/proc KiB | PSS/proc KiB | total RSS KiB | foreign CPU % | context switches/req |"
		echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
		awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $11, $9, $10, $12}' "$RAW"
		md_warnings
	} >"$RESULTS"
	log "wrote $RESULTS"
fi
