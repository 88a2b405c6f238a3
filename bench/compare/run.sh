#!/usr/bin/env bash
# bench/compare/run.sh: phased (each MPM) against a bare Go server, nginx and
# Apache httpd (each MPM), on 127.0.0.1, serving the same two files (issue #9).
#
#   sudo bench/compare/run.sh                    # 3 interleaved rounds (~12 min); writes BENCHMARKS.md
#   ROUNDS=1 DURATION=3 bench/compare/run.sh     # a quick look (~3 min)
#   ONLY="phased-event nginx bare-go" RESULTS=- bench/compare/run.sh
#   QUICK=1 bench/compare/run.sh                 # the connection suite alone (issue #16), a few minutes
#
# Two suites run in the same interleaved rounds: "files" (below) and
# "conns" (conn_tests: keep-alive at 50, 1,000 and 10,000 connections,
# Connection: close, slowloris with a probe, idle PSS; README.md).
#
# Every target serves a temp document root holding hello.txt (6 bytes,
# "hello\n") and 4k.bin (4096 bytes), on its own port from PORT_BASE. Targets:
#
#   phased-prefork   bin/phased, mpm prefork: start 4, min/max spare 2/8, server_limit = max_request_workers = 64
#   phased-worker    bin/phased, mpm worker: start 2, 25 threads/child, min/max spare threads 25/75, max_request_workers 150
#   phased-event     bin/phased, mpm event: as worker
#   bare-go          bench/mpm/bare -handler memory: one Go process, the files' bytes from memory
#   bare-fileserver  bench/mpm/bare -handler fileserver: one Go process, net/http's http.FileServer
#   nginx            nginx, worker_processes 2, access_log off, sendfile, open_file_cache, keepalive_requests 1000000
#   apache-event     Apache httpd 2.4 mpm_event, settings as phased-worker
#   apache-worker    Apache httpd 2.4 mpm_worker, settings as phased-worker
#   apache-prefork   Apache httpd 2.4 mpm_prefork, settings as phased-prefork
#
# (bench/mpm/README.md explains the MPM settings and why the prefork servers
# are warmed up until they have CONNS children.) For each target, each round:
#
#   1. start to first 200: the server is launched in the foreground (as this
#      shell's child) and GET /hello.txt is polled every 5 ms (bash /dev/tcp,
#      no fork) until a 200; the time from launch to that 200.
#   2. warm-up: prefork targets get 1 s loads until they have CONNS children
#      (RAMP_TIMEOUT at most; column "ramp s"); then, per file, WARMUP s of
#      wrk on that file followed by the measurement
#        wrk -t1 -cCONNS -dDURATIONs --latency http://127.0.0.1:PORT/FILE
#      (the order of the two files alternates by round).
#   3. RSS (VmRSS) and PSS of every serving process right after the loads.
#   4. graceful restart: from the command to the new generation serving.
#      phased: `phased -f CONF -k graceful` (returns once the new generation
#      is ready) and then a 200; nginx: `nginx -s reload` until every worker
#      PID is new and a request gets 200; Apache: `apache2 -f CONF -k graceful`
#      until every child PID is new and a request gets 200. Also reported:
#      the time until every old serving process has exited ("old gone").
#   5. stop (SIGTERM to the process this shell started).
#
# The round of all targets runs ROUNDS times, the order rotated by one each
# round; the tables give medians. Ratios are of median req/s to bare-go's and
# nginx's for the same file.
#
# Environment: ROUNDS (3), DURATION (8, seconds), WARMUP (2, seconds), CONNS
# (50), RAMP_TIMEOUT (40, seconds), PORT_BASE (18500), ONLY (a space-separated
# subset of the targets), RESULTS (BENCHMARKS.md at the repository root; "-"
# for none), KEEP_TMP (0: the temp dir is kept only when the run fails),
# QUIET_MAX (15) and QUIET_TIMEOUT (120): before each target starts, wait up to
# QUIET_TIMEOUT s for the machine to be busy less than QUIET_MAX % of all
# CPUs; FOREIGN_MAX (10) and RETRIES (1): a target whose measurement saw
# other processes use more than FOREIGN_MAX % of the CPUs ("foreign CPU") is
# measured again, up to RETRIES times; PATIENCE (15, minutes): after that the
# run neither waits for quiet nor measures again.
#
# Needs root: it installs wrk, apache2-utils, nginx and apache2 from Debian
# when they are missing, and starts nginx and Apache as root (their workers
# switch to www-data). It never touches the system's nginx or Apache
# instances: each runs with its own config file in a temp dir.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=bench/compare/lib.sh
. "$REPO/bench/compare/lib.sh"

# QUICK=1: the connection suite alone, one round of short loads (a few minutes).
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
	: "${ROUNDS:=1}" "${DURATION:=3}" "${WARMUP:=1}" "${SUITES:=conns}" "${SLOW_HOLD:=4}"
	: "${QUIET_TIMEOUT:=10}" "${RETRIES:=0}"
fi
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
SUITES=${SUITES:-files conns}
BASELINE=${BASELINE:-}
if [ -n "$BASELINE" ]; then
	[ -x "$BASELINE" ] || { echo "run.sh: BASELINE $BASELINE is not an executable" >&2; exit 2; }
	CONN_TARGETS=${CONN_TARGETS:-phased-prefork phased-base-prefork phased-worker phased-base-worker phased-event phased-base-event nginx apache-event}
else
	CONN_TARGETS=${CONN_TARGETS:-phased-prefork phased-worker phased-event nginx apache-event}
fi
SLOW_HOLD=${SLOW_HOLD:-8}
SLOW_INTERVAL=${SLOW_INTERVAL:-5}
CONN_RESULTS=${CONN_RESULTS:--}
CONNS=${CONNS:-50}
RAMP_TIMEOUT=${RAMP_TIMEOUT:-40}
PORT_BASE=${PORT_BASE:-18500}
RESULTS=${RESULTS:-$REPO/BENCHMARKS.md}
KEEP_TMP=${KEEP_TMP:-0}
QUIET_MAX=${QUIET_MAX:-15}
QUIET_TIMEOUT=${QUIET_TIMEOUT:-120}
FOREIGN_MAX=${FOREIGN_MAX:-10}
RETRIES=${RETRIES:-1}
PATIENCE=${PATIENCE:-15}
ONLY=${ONLY:-}
PHASED=$REPO/bin/phased
APACHE=/usr/sbin/apache2
APACHE_MODULES=/usr/lib/apache2/modules
NGINX=/usr/sbin/nginx
FILES=(hello.txt 4k.bin)
COMMAND="$0${*:+ $*}"
for v in ROUNDS DURATION WARMUP CONNS RAMP_TIMEOUT PORT_BASE KEEP_TMP QUIET_MAX QUIET_TIMEOUT FOREIGN_MAX RETRIES PATIENCE SLOW_HOLD SLOW_INTERVAL; do
	if ! [[ ${!v} =~ ^[0-9]+$ ]]; then
		echo "run.sh: $v must be a whole number, not '${!v}'" >&2
		exit 2
	fi
done
if [ "$ROUNDS" -lt 1 ] || [ "$DURATION" -lt 1 ]; then
	die "ROUNDS and DURATION must be at least 1"
fi
env_desc=""
for v in ROUNDS DURATION WARMUP CONNS RAMP_TIMEOUT SLOW_HOLD; do
	env_desc+="$v=${!v} "
done
env_desc+="SUITES='$SUITES' "
for su in $SUITES; do
	case $su in files | conns) ;; *) die "SUITES: unknown suite $su (files conns)" ;; esac
done
has_suite() { [[ " $SUITES " == *" $1 "* ]]; }
conn_target() { has_suite conns && [[ " $CONN_TARGETS " == *" $1 "* ]]; }
[ -z "$ONLY" ] || env_desc+="ONLY='$ONLY' "

if [ -n "$BASELINE" ]; then
	# each baseline next to its counterpart: the pair runs under the same
	# conditions of a shared machine
	ALL_TARGETS=(phased-prefork phased-base-prefork phased-worker phased-base-worker phased-event phased-base-event bare-go bare-fileserver nginx apache-event apache-worker apache-prefork)
else
	ALL_TARGETS=(phased-prefork phased-worker phased-event bare-go bare-fileserver nginx apache-event apache-worker apache-prefork)
fi
if [ -n "$ONLY" ]; then
	read -r -a TARGETS <<<"$ONLY"
	for t in "${TARGETS[@]}"; do
		[[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || die "ONLY: unknown target $t (${ALL_TARGETS[*]})"
	done
else
	TARGETS=("${ALL_TARGETS[@]}")
fi

# --- what this script started, for the trap --------------------------------
TMP=""
CUR_PID=""      # the server process this shell started (in the foreground)
CUR_CHILDREN="" # the last known children of the current server
LOAD_PID=""

trap 'end_run $?' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. tools ----------------------------------------------------------------
install_missing wrk=wrk ab=apache2-utils "$APACHE=apache2" "$NGINX=nginx"
command -v go >/dev/null 2>&1 || die "go is not on PATH"
command -v curl >/dev/null 2>&1 || die "curl is not on PATH"
[ "$(id -u)" = 0 ] || die "nginx and Apache are started as root here (their workers switch to www-data): run as root"
# 10,000 connections need as many descriptors in wrk and in each server,
# which inherit this shell's limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if has_suite conns && [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 10100 ]; then
	die "the connection suite needs 10,100 descriptors; ulimit -n is $(ulimit -n) (hard $(ulimit -Hn))"
fi

# --- 2. binaries -----------------------------------------------------------------
if [ ! -x "$PHASED" ]; then
	log "building bin/phased"
	make -C "$REPO" build >/dev/null
fi
TMP=$(mktemp -d /tmp/phased-bench-compare.XXXXXX)
chmod 755 "$TMP" # nginx's and Apache's workers (www-data) read the document root
PHASED_DESC="$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$REPO" && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && echo ' (with uncommitted changes)'), bin/phased built $(date -u -r "$PHASED" '+%Y-%m-%d %H:%M UTC')"
# A copy, so that a rebuild of bin/phased during the run changes nothing.
cp "$PHASED" "$TMP/phased"
PHASED=$TMP/phased
if [ -n "$BASELINE" ]; then
	BASE_DESC="$BASELINE, built $(date -u -r "$BASELINE" '+%Y-%m-%d %H:%M UTC')"
	cp "$BASELINE" "$TMP/phased-base"
fi
# phased_bin TARGET: the binary of a phased target (phased-base-*: BASELINE's).
phased_bin() {
	if [[ $1 == phased-base-* ]]; then echo "$TMP/phased-base"; else echo "$PHASED"; fi
}
log "building bench/mpm/bare"
(cd "$REPO" && go build -o "$TMP/bare" ./bench/mpm/bare)
if has_suite conns; then
	log "building bench/slowloris"
	(cd "$REPO" && go build -o "$TMP/slowloris" ./bench/slowloris)
fi

# --- 3. document root -------------------------------------------------------------
make_www

NGINX_CONNS=1024 # worker_connections; the connection suite's nginx has 16384

# --- 4. configs ------------------------------------------------------------------
# save_conf NAME FILE: keeps the first generated config of each kind for RESULTS.
save_conf() {
	[ -f "$TMP/configs/$1" ] || sed "s#$TMP#\$TMP#g" "$2" >"$TMP/configs/$1"
}

phased_conf() { # MPM PORT DIR
	local mpm=$1 port=$2 dir=$3
	mkdir -p "$dir"
	{
		cat <<EOF
server_root: $dir
listen: ["127.0.0.1:$port"]
pid_file: $dir/phased.pid
document_root: $WWW
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
	"$PHASED" -f "$dir/phased.yaml" -t >/dev/null 2>"$dir/check.log" ||
		die "phased -t rejects $dir/phased.yaml: $(cat "$dir/check.log")"
	save_conf "phased-$mpm.yaml" "$dir/phased.yaml"
}

nginx_conf() { # PORT DIR
	local port=$1 dir=$2
	mkdir -p "$dir/tmp"
	cat >"$dir/nginx.conf" <<EOF
user www-data;
worker_processes 2;
worker_rlimit_nofile $((NGINX_CONNS + 100));
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events {
    worker_connections $NGINX_CONNS;
}
http {
$(nginx_http_common "$dir")
    server {
        listen 127.0.0.1:$port;
        root $WWW;
    }
}
EOF
	"$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" -t >/dev/null 2>"$dir/check.log" ||
		die "nginx -t rejects $dir/nginx.conf: $(cat "$dir/check.log")"
	save_conf "nginx-$NGINX_CONNS.conf" "$dir/nginx.conf"
}

apache_conf() { # MPM PORT DIR
	local mpm=$1 port=$2 dir=$3
	mkdir -p "$dir"
	{
		cat <<EOF
ServerRoot $dir
ServerName 127.0.0.1
Listen 127.0.0.1:$port
LoadModule mpm_${mpm}_module $APACHE_MODULES/mod_mpm_$mpm.so
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
DocumentRoot $WWW
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory $WWW>
    Require all granted
</Directory>
HostnameLookups Off
EnableSendfile On
KeepAlive On
KeepAliveTimeout 5
MaxKeepAliveRequests 0
Timeout 60
MaxConnectionsPerChild 0
EOF
		case $mpm in
		prefork)
			cat <<EOF
StartServers 4
MinSpareServers 2
MaxSpareServers 8
ServerLimit 64
MaxRequestWorkers 64
EOF
			;;
		worker | event)
			cat <<EOF
StartServers 2
ThreadsPerChild 25
MinSpareThreads 25
MaxSpareThreads 75
MaxRequestWorkers 150
EOF
			;;
		esac
	} >"$dir/httpd.conf"
	"$APACHE" -f "$dir/httpd.conf" -t >/dev/null 2>"$dir/check.log" ||
		die "apache2 -t rejects $dir/httpd.conf: $(cat "$dir/check.log")"
	save_conf "apache-$mpm.conf" "$dir/httpd.conf"
}

# --- 5. targets ---------------------------------------------------------------------
# start_target TARGET DIR: writes the config, launches TARGET in the
# foreground on a free port and waits for its first 200; sets PORT, MASTER,
# CONF, START_MS.
start_target() {
	local t=$1 dir=$2 t0 code deadline
	local -a cmd
	pick_port
	case $t in
	phased-*)
		local mpm=${t#phased-}
		phased_conf "${mpm#base-}" "$PORT" "$dir"
		CONF=$dir/phased.yaml
		cmd=("$(phased_bin "$t")" -f "$CONF")
		;;
	bare-go | bare-fileserver)
		mkdir -p "$dir"
		CONF=""
		local handler=memory
		[ "$t" = bare-fileserver ] && handler=fileserver
		cmd=("$TMP/bare" -addr "127.0.0.1:$PORT" -root "$WWW" -handler "$handler")
		;;
	nginx)
		nginx_conf "$PORT" "$dir"
		CONF=$dir/nginx.conf
		cmd=("$NGINX" -p "$dir/" -c "$CONF" -e "$dir/error.log" -g "daemon off;")
		;;
	apache-*)
		apache_conf "${t#apache-}" "$PORT" "$dir"
		CONF=$dir/httpd.conf
		cmd=("$APACHE" -f "$CONF" -DFOREGROUND)
		;;
	*) die "unknown target $t" ;;
	esac
	# In its own session: Apache signals its whole process group when it
	# stops (prefork's killpg), which would otherwise include this script.
	# setsid execs (no fork: a background job of a script leads no group),
	# so $! is the server's PID.
	t0=$(now_us)
	setsid "${cmd[@]}" >>"$dir/stderr.log" 2>&1 &
	CUR_PID=$!
	MASTER=$CUR_PID
	deadline=$((SECONDS + 20))
	while :; do
		code=$(http_code "$PORT" /hello.txt)
		[ "$code" = 200 ] && break
		if gone "$CUR_PID"; then
			die "$t (pid $CUR_PID) exited before serving: $(tail -5 "$dir/stderr.log" "$dir/error.log" 2>/dev/null)"
		fi
		[ $SECONDS -lt $deadline ] || die "$t: no 200 on port $PORT within 20 s (last code $code)"
		sleep 0.005
	done
	START_MS=$((($(now_us) - t0) / 1000))
	check_files "$t"
}

# check_files TARGET: both files come back whole, with a 200.
check_files() {
	local f size
	for f in "${FILES[@]}"; do
		size=$(curl -fsS -o /dev/null -w '%{size_download}' --max-time 5 "http://127.0.0.1:$PORT/$f") ||
			die "$1: GET /$f failed"
		[ "$size" = "$(stat -c %s "$WWW/$f")" ] || die "$1: GET /$f returned $size bytes"
	done
}

# serving_pids TARGET: the processes that serve requests. phased's master
# also runs its MPM as a plugin process (phased --internal-plugin mpm NAME),
# nginx may run cache helpers; neither serves.
serving_pids() {
	local p cmdline
	case $1 in
	bare-*) echo "$MASTER" ;;
	*)
		for p in $(children_of "$MASTER"); do
			cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
			case $1 in
			phased-*) if [[ $cmdline != *--internal-plugin* ]]; then echo "$p"; fi ;;
			nginx) if [[ $cmdline == *"worker process"* ]]; then echo "$p"; fi ;;
			*) echo "$p" ;;
			esac
		done
		;;
	esac
}

# helper_pids TARGET: the master's children that do not serve.
helper_pids() {
	local p s
	s=" $(serving_pids "$1" | tr '\n' ' ') "
	for p in $(children_of "$MASTER"); do
		if [[ $s != *" $p "* ]]; then echo "$p"; fi
	done
}

nprocs() {
	local -a p
	mapfile -t p < <(serving_pids "$1")
	echo "${#p[@]}"
}

# run_wrk SECONDS OUT FILE: wrk in the background, so that the trap can stop it.
run_wrk() {
	wrk -t1 "-c$CONNS" "-d$1s" --latency "http://127.0.0.1:$PORT/$3" >"$2" 2>&1 &
	LOAD_PID=$!
	wait "$LOAD_PID" || die "wrk failed: $(cat "$2")"
	LOAD_PID=""
}

# wrk_to OUT ARGS...: wrk ARGS in the background (so that the trap can stop
# it), its output in OUT.
wrk_to() {
	local out=$1
	shift
	wrk "$@" >"$out" 2>&1 &
	LOAD_PID=$!
	wait "$LOAD_PID" || die "wrk failed: $(cat "$out")"
	LOAD_PID=""
}

# pss_of TARGET: sets PSS_MED and RSS_MED (KiB, median over the serving
# processes) and NPROC.
pss_of() {
	local p v rss=() pss=()
	for p in $(serving_pids "$1"); do
		v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null) || continue
		[ -n "$v" ] || continue
		pss+=("$v")
		v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
		rss+=("$v")
	done
	NPROC=${#pss[@]}
	PSS_MED=$(printf '%s\n' "${pss[@]}" | median)
	RSS_MED=$(printf '%s\n' "${rss[@]}" | median)
}

# server_cpu PID...: the CPU time (user + system, every thread) of PIDs
# that are not this shell, in jiffies, with the time of the master's
# children that have exited and been reaped (its cutime and cstime), so that
# a child that exits during a measurement keeps its time in the sum.
server_cpu() {
	local p n=0 v
	for p in "$@"; do
		[ "$p" != "$$" ] || continue
		if [ "$p" = "$MASTER" ]; then
			v=$(awk '{sub(/^.*\) /, ""); print $12 + $13 + $14 + $15}' "/proc/$p/stat" 2>/dev/null) || continue
		else
			v=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null) || continue
		fi
		n=$((n + ${v:-0}))
	done
	echo "$n"
}

# settle: waits until the server's connections of the last test are gone
# (no ESTABLISHED or CLOSE_WAIT socket on PORT left; 15 s at most).
settle() {
	local deadline=$((SECONDS + 15)) n
	while :; do
		n=$(ss -Htn state established state close-wait "( sport = :$PORT )" 2>/dev/null | wc -l)
		[ "$n" = 0 ] && return 0
		[ $SECONDS -lt $deadline ] || {
			log "warning: $n connections still open on port $PORT after 15 s"
			return 0
		}
		sleep 0.2
	done
}

# conn_tests ROUND TARGET DIR: the connection suite on a freshly started
# TARGET: idle PSS per child; Connection: close at 50 on the fresh server;
# keep-alive at 50, 1,000 and 10,000 connections; Connection: close at 50
# again after them (close50-after: a prefork server then holds the children
# ka50 grew it to); slowloris at 500 and 2,000 slow
# connections with a normal request's latency meanwhile; PSS after the
# loads. Appends to CRAW, SRAW and MRAW.
conn_tests() {
	local r=$1 t=$2 dir=$3 name c thr out idle_pss idle_rss line
	local -a args
	sleep 2 # idle: the start's garbage collected, nothing in flight
	pss_of "$t"
	idle_pss=$PSS_MED idle_rss=$RSS_MED
	for name in close50 ka50 ka1000 ka10000 close50-after; do
		case $name in
		ka50) c=50 thr=1 args=() ;;
		ka1000) c=1000 thr=2 args=() ;;
		ka10000) c=10000 thr=2 args=() ;;
		close50 | close50-after) c=50 thr=1 args=(-H 'Connection: close') ;;
		esac
		if [[ $t == *-prefork ]] && [ "$c" -gt 64 ]; then
			continue # a connection holds a prefork child: at most 64
		fi
		out=$dir/conn-$name.txt
		settle
		# warm-up: the first seconds (a prefork server grows then); its
		# figures are kept as "cold"
		wrk_to "$dir/conn-$name-warm.txt" "-t$thr" "-c$c" "-d${WARMUP}s" --latency "${args[@]}" "http://127.0.0.1:$PORT/hello.txt"
		parse_wrk "$dir/conn-$name-warm.txt"
		line=$(printf '%s\t%s\t%s-cold\t%s\t%s\t%s\t%s' "$r" "$t" "$name" "$RPS" "$P50" "$P99" "$ERRS")
		# shellcheck disable=SC2046
		set -- $(printf '%s\n' "$MASTER" $(children_of "$MASTER") | sort -u)
		c0=$(cpu_now)
		o0=$(our_cpu "$@")
		s0=$(server_cpu "$@")
		wrk_to "$out" "-t$thr" "-c$c" "-d${DURATION}s" --latency "${args[@]}" "http://127.0.0.1:$PORT/hello.txt"
		# shellcheck disable=SC2046
		set -- $(printf '%s\n' "$@" $(children_of "$MASTER") | sort -u)
		o1=$(our_cpu "$@")
		s1=$(server_cpu "$@")
		c1=$(cpu_now)
		FOREIGN=$(foreign_pct "$c0" "$c1" "$o0" "$o1")
		parse_wrk "$out"
		# the server's CPU time per request, µs (jiffies of 10 ms)
		reqs=$(awk '/requests in/ {print $1}' "$out")
		us=$(awk -v j=$((s1 - s0)) -v n="${reqs:-0}" 'BEGIN {if (n > 0) printf "%.1f", j * 10000 / n; else print "-"}')
		log "round $r $t $name: $RPS req/s, p50 $P50 ms, p99 $P99 ms, errors $ERRS, server CPU $us µs/req, foreign CPU $FOREIGN%"
		printf '%s\t-\t-\n%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$line" "$r" "$t" "$name" "$RPS" "$P50" "$P99" "$ERRS" "$FOREIGN" "$us" >>"$CRAW"
	done
	for c in 500 2000; do
		[[ $t != *-prefork ]] || continue # 64 children: every one held
		settle
		out=$dir/slowloris-$c.txt
		"$TMP/slowloris" -addr "127.0.0.1:$PORT" -conns "$c" -interval "${SLOW_INTERVAL}s" -hold "${SLOW_HOLD}s" \
			-probe-timeout 5s -path /hello.txt >"$out" 2>&1 || die "slowloris failed: $(cat "$out")"
		log "round $r $t slowloris $c: $(cat "$out")"
		# conns=.. opened=.. open_at_end=.. probes=.. ok=.. failed=.. p50_ms=.. p99_ms=.. max_ms=..
		awk -v r="$r" -v t="$t" '{for (i = 1; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]}
			printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r, t, v["conns"], v["opened"], v["open_at_end"],
				v["probes"], v["failed"], v["p50_ms"], v["p99_ms"], v["max_ms"]}' "$out" >>"$SRAW"
	done
	settle
	sleep 2
	pss_of "$t"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$t" "$NPROC" "$idle_rss" "$idle_pss" "$RSS_MED" "$PSS_MED" >>"$MRAW"
}

# ramp TARGET DIR: prefork targets get 1 s loads until they have CONNS
# children (a keep-alive connection holds a prefork child); sets RAMP.
ramp() {
	local t=$1 dir=$2 start=$SECONDS n
	RAMP="-"
	case $t in
	*-prefork)
		n=$(nprocs "$t")
		while [ "$n" -lt "$CONNS" ]; do
			if [ $((SECONDS - start)) -ge "$RAMP_TIMEOUT" ]; then
				log "warning: $t has $n children after ${RAMP_TIMEOUT}s of load, fewer than $CONNS connections"
				break
			fi
			run_wrk 1 "$dir/ramp.txt" hello.txt
			n=$(nprocs "$t")
		done
		RAMP=$((SECONDS - start))
		;;
	esac
}

# rss TARGET: sets RSS_MED and PSS_MED (median VmRSS and Pss per serving
# process, KiB), RSS_TOTAL (KiB, serving processes plus master and helpers),
# NPROC.
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

# restart TARGET DIR: a graceful restart; sets RESTART_MS (command to the new
# generation serving) and OLDGONE_MS (command to the last old serving process
# gone), "-" for the bare servers.
restart() {
	local t=$1 dir=$2 t0 deadline p old new fresh code
	RESTART_MS="-" OLDGONE_MS="-"
	case $t in bare-*) return 0 ;; esac
	mapfile -t old < <(serving_pids "$t")
	t0=$(now_us)
	case $t in
	phased-*)
		"$(phased_bin "$t")" -f "$CONF" -k graceful >>"$dir/restart.log" 2>&1 ||
			die "$t: phased -k graceful failed: $(cat "$dir/restart.log")"
		;;
	nginx)
		"$NGINX" -p "$dir/" -c "$CONF" -e "$dir/error.log" -s reload >>"$dir/restart.log" 2>&1 ||
			die "$t: nginx -s reload failed: $(cat "$dir/restart.log")"
		;;
	apache-*)
		"$APACHE" -f "$CONF" -k graceful >>"$dir/restart.log" 2>&1 ||
			die "$t: apache2 -k graceful failed: $(cat "$dir/restart.log")"
		;;
	esac
	deadline=$((SECONDS + 30))
	while :; do
		fresh=1
		if [[ $t != phased-* ]]; then
			# every serving process is new (and there is one)
			mapfile -t new < <(serving_pids "$t")
			[ ${#new[@]} -gt 0 ] || fresh=0
			for p in "${new[@]}"; do
				if [[ " ${old[*]} " == *" $p "* ]]; then fresh=0; fi
			done
		fi
		if [ $fresh = 1 ]; then
			code=$(http_code "$PORT" /hello.txt)
			[ "$code" = 200 ] && break
		fi
		[ $SECONDS -lt $deadline ] || die "$t: no new generation serving within 30 s of the graceful restart"
		sleep 0.005
	done
	RESTART_MS=$((($(now_us) - t0) / 1000))
	if wait_gone 30 "${old[@]}"; then
		OLDGONE_MS=$((($(now_us) - t0) / 1000))
	else
		OLDGONE_MS=">30000"
		log "warning: $t: old serving processes still running 30 s after the graceful restart"
	fi
	check_files "$t"
}

# --- 6. rounds ---------------------------------------------------------------------
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
PATIENCE_END=$((SECONDS + PATIENCE * 60))
RAW=$TMP/raw.tsv   # round target file rps p50 p99 errors foreign
PROCS=$TMP/procs.tsv # round target start_ms restart_ms oldgone_ms nproc rss_med pss_med rss_total ramp
CRAW=$TMP/conns.tsv  # round target test rps p50 p99 errors foreign
SRAW=$TMP/slow.tsv   # round target conns opened open_at_end probes failed p50 p99 max
MRAW=$TMP/mem.tsv    # round target nproc idle_rss idle_pss after_rss after_pss
: >"$RAW"
: >"$PROCS"
: >"$CRAW"
: >"$SRAW"
: >"$MRAW"
nt=${#TARGETS[@]}
log "targets: ${TARGETS[*]}; $ROUNDS rounds of wrk -t1 -c$CONNS -d${DURATION}s per file (${FILES[*]})"
for ((r = 0; r < ROUNDS; r++)); do
	for ((k = 0; k < nt; k++)); do
		t=${TARGETS[$(((k + r) % nt))]}
		if conn_target "$t"; then
			dir=$TMP/r$((r + 1))-$t-conns
			wait_quiet
			NGINX_CONNS=16384 # 10,000 connections (each worker allocates them at start)
			start_target "$t" "$dir"
			conn_tests $((r + 1)) "$t" "$dir"
			CUR_CHILDREN=$(children_of "$MASTER")
			stop_server
			NGINX_CONNS=1024
		fi
		has_suite files || continue
		if [ $((r % 2)) = 0 ]; then files=("${FILES[@]}"); else files=("${FILES[1]}" "${FILES[0]}"); fi
		for ((attempt = 1; ; attempt++)); do
			dir=$TMP/r$((r + 1))-$t-a$attempt
			rows=""
			fmax=0
			wait_quiet
			start_target "$t" "$dir"
			ramp "$t" "$dir"
			for f in "${files[@]}"; do
				run_wrk "$WARMUP" "$dir/warm-${f%%.*}.txt" "$f"
				# shellcheck disable=SC2046
				set -- $(printf '%s\n' "$MASTER" $(children_of "$MASTER") | sort -u)
				c0=$(cpu_now)
				o0=$(our_cpu "$@")
				run_wrk "$DURATION" "$dir/wrk-${f%%.*}.txt" "$f"
				# Children started during the load are ours too: all their time is.
				# shellcheck disable=SC2046
				set -- $(printf '%s\n' "$@" $(children_of "$MASTER") | sort -u)
				o1=$(our_cpu "$@")
				c1=$(cpu_now)
				FOREIGN=$(foreign_pct "$c0" "$c1" "$o0" "$o1")
				[ "$FOREIGN" -le "$fmax" ] || fmax=$FOREIGN
				parse_wrk "$dir/wrk-${f%%.*}.txt"
				log "round $((r + 1)) $t $f: $RPS req/s, p50 $P50 ms, p99 $P99 ms, errors $ERRS, foreign CPU $FOREIGN%"
				rows+=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' $((r + 1)) "$t" "$f" "$RPS" "$P50" "$P99" "$ERRS" "$FOREIGN")$'\n'
			done
			rss "$t"
			restart "$t" "$dir"
			CUR_CHILDREN=$(children_of "$MASTER")
			log "round $((r + 1)) $t: start to 200 $START_MS ms, graceful restart $RESTART_MS ms (old gone $OLDGONE_MS ms), ramp $RAMP s, $NPROC procs, RSS/proc $RSS_MED KiB"
			stop_server
			if [ "$fmax" -le "$FOREIGN_MAX" ] || [ "$attempt" -gt "$RETRIES" ] || [ $SECONDS -ge $PATIENCE_END ]; then
				break
			fi
			log "round $((r + 1)) $t: other processes used $fmax% of the CPUs (> FOREIGN_MAX $FOREIGN_MAX%): measuring again"
		done
		printf '%s' "$rows" >>"$RAW"
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' $((r + 1)) "$t" "$START_MS" "$RESTART_MS" "$OLDGONE_MS" \
			"$NPROC" "$RSS_MED" "$PSS_MED" "$RSS_TOTAL" "$RAMP" >>"$PROCS"
		collect_warnings "$dir" "round $((r + 1)) $t"
	done
done

# --- 7. tables -------------------------------------------------------------------------
rcol() { # TARGET FILE COLUMN: the median of a column of RAW over the rounds
	awk -F'\t' -v t="$1" -v f="$2" -v c="$3" '$2 == t && $3 == f && $c != "-" {print $c}' "$RAW" | median
}
pcol() { # TARGET COLUMN: the median of a column of PROCS over the rounds
	awk -F'\t' -v t="$1" -v c="$2" '$2 == t && $c != "-" && $c !~ />/ {print $c}' "$PROCS" | median
}
size_of() { stat -c %s "$WWW/$1"; }
TABLE=$TMP/table.md
{
	echo "| target | file | req/s | p50 ms | p99 ms | x bare-go | x nginx | errors | foreign CPU % |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
	for f in "${FILES[@]}"; do
		bare=$(rcol bare-go "$f" 4)
		ngx=$(rcol nginx "$f" 4)
		for t in "${TARGETS[@]}"; do
			errs=$(awk -F'\t' -v t="$t" -v f="$f" '$2 == t && $3 == f {n += $7} END {print n + 0}' "$RAW")
			fmax=$(awk -F'\t' -v t="$t" -v f="$f" '$2 == t && $3 == f && $8 > m {m = $8} END {print m + 0}' "$RAW")
			awk -v t="$t" -v f="$f ($(size_of "$f") B)" -v rps="$(rcol "$t" "$f" 4)" -v p50="$(rcol "$t" "$f" 5)" \
				-v p99="$(rcol "$t" "$f" 6)" -v bare="$bare" -v ngx="$ngx" -v errs="$errs" -v fmax="$fmax" 'BEGIN {
				printf "| %s | %s | %.0f | %.2f | %.2f | %s | %s | %s | %s |\n", t, f, rps, p50, p99,
					(bare > 0 ? sprintf("%.2f", rps / bare) : "-"), (ngx > 0 ? sprintf("%.2f", rps / ngx) : "-"), errs, fmax }'
		done
	done
} >"$TABLE"
PTABLE=$TMP/ptable.md
{
	echo "| target | serving procs | RSS per child KiB | PSS per child KiB | total RSS MiB | start to first 200 ms | graceful restart ms | old gone ms | prefork ramp s |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for t in "${TARGETS[@]}"; do
		awk -v t="$t" -v np="$(pcol "$t" 6)" -v rssm="$(pcol "$t" 7)" -v pssm="$(pcol "$t" 8)" -v tot="$(pcol "$t" 9)" \
			-v st="$(pcol "$t" 3)" -v rs="$(pcol "$t" 4)" -v og="$(pcol "$t" 5)" -v ramp="$(pcol "$t" 10)" 'BEGIN {
			printf "| %s | %s | %.0f | %.0f | %.1f | %s | %s | %s | %s |\n", t, np, rssm, pssm, tot / 1024, st, rs, og, ramp }'
	done
} >"$PTABLE"

# The connection suite: medians over the rounds, errors summed.
ccol() { # FILE TARGET TEST COLUMN
	awk -F'\t' -v t="$2" -v k="$3" -v c="$4" '$2 == t && $3 == k && $c != "-" && $c != "" {print $c}' "$1" | median
}
csum() { # FILE TARGET TEST COLUMN: the column's sum over the rounds
	awk -F'\t' -v t="$2" -v k="$3" -v c="$4" '$2 == t && $3 == k {n += $c} END {print n + 0}' "$1"
}
CTABLE=$TMP/ctable.md
{
	echo "| test | target | req/s | x nginx | p50 ms | p99 ms | p99 x nginx | errors | server CPU µs/req | foreign CPU % |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for k in close50-cold close50 ka50-cold ka50 ka1000 ka10000 close50-after; do
		ngx=$(ccol "$CRAW" nginx "$k" 4)
		ngx99=$(ccol "$CRAW" nginx "$k" 6)
		for t in "${TARGETS[@]}"; do
			conn_target "$t" || continue
			rps=$(ccol "$CRAW" "$t" "$k" 4)
			[ "$rps" != "-" ] || continue
			errs=$(csum "$CRAW" "$t" "$k" 7)
			fmax=$(awk -F'\t' -v t="$t" -v k="$k" '$2 == t && $3 == k && $8 != "-" && $8 > m {m = $8} END {print m + 0}' "$CRAW")
			awk -v k="$k" -v t="$t" -v rps="$rps" -v p50="$(ccol "$CRAW" "$t" "$k" 5)" -v p99="$(ccol "$CRAW" "$t" "$k" 6)" \
				-v ngx="$ngx" -v ngx99="$ngx99" -v errs="$errs" -v fmax="$fmax" -v us="$(ccol "$CRAW" "$t" "$k" 9)" 'BEGIN {
				printf "| %s | %s | %.0f | %s | %.2f | %.2f | %s | %s | %s | %s |\n", k, t, rps,
					(ngx > 0 ? sprintf("%.2f", rps / ngx) : "-"), p50, p99,
					(ngx99 > 0 ? sprintf("%.2f", p99 / ngx99) : "-"), errs, us, (k ~ /-cold$/ ? "-" : fmax) }'
		done
	done
	echo
	echo "| slowloris conns | target | opened | still open at the end | probes | probes failed | probe p50 ms | probe p99 ms | probe max ms | p99 x nginx |"
	echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for c in 500 2000; do
		ngx99=$(ccol "$SRAW" nginx "$c" 9)
		for t in "${TARGETS[@]}"; do
			conn_target "$t" || continue
			opened=$(ccol "$SRAW" "$t" "$c" 4)
			[ "$opened" != "-" ] || continue
			failed=$(csum "$SRAW" "$t" "$c" 7)
			probes=$(csum "$SRAW" "$t" "$c" 6)
			awk -v c="$c" -v t="$t" -v o="$opened" -v oe="$(ccol "$SRAW" "$t" "$c" 5)" -v pr="$probes" -v f="$failed" \
				-v p50="$(ccol "$SRAW" "$t" "$c" 8)" -v p99="$(ccol "$SRAW" "$t" "$c" 9)" -v mx="$(ccol "$SRAW" "$t" "$c" 10)" -v ngx99="$ngx99" 'BEGIN {
				printf "| %s | %s | %s | %s | %s | %s | %.2f | %.2f | %.2f | %s |\n", c, t, o, oe, pr, f, p50, p99, mx,
					(ngx99 > 0 ? sprintf("%.1f", p99 / ngx99) : "-") }'
		done
	done
	echo
	echo "| target | serving procs | idle RSS per child KiB | idle PSS per child KiB | idle PSS x nginx | RSS after the loads KiB | PSS after the loads KiB |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	mcol() { awk -F'\t' -v t="$t" -v c="$1" '$2 == t && $c != "-" {print $c}' "$MRAW" | median; }
	for t in "${TARGETS[@]}"; do
		conn_target "$t" || continue
		[ "$(mcol 3)" != "-" ] || continue
		awk -v t="$t" -v np="$(mcol 3)" -v ir="$(mcol 4)" -v ip="$(mcol 5)" -v ar="$(mcol 6)" -v ap="$(mcol 7)" -v ngx="$(awk -F'\t' '$2 == "nginx" {print $5}' "$MRAW" | median)" 'BEGIN {
			printf "| %s | %s | %.0f | %.0f | %s | %.0f | %.0f |\n", t, np, ir, ip, (ngx > 0 ? sprintf("%.2f", ip / ngx) : "-"), ar, ap }'
	done
} >"$CTABLE"

if has_suite files; then
	echo
	echo "Throughput (medians of $ROUNDS round(s); x = ratio of req/s to bare-go's / nginx's for the same file):"
	echo
	cat "$TABLE"
	echo
	echo "Processes (medians; RSS right after the loads, restart = command to the new generation serving):"
	echo
	cat "$PTABLE"
fi
if has_suite conns; then
	echo
	echo "Connections (medians of $ROUNDS round(s); GET /hello.txt; x nginx = ratio to nginx's in the same run):"
	echo
	cat "$CTABLE"
fi
show_warnings

cpu_model=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem_total=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)

# conn_section: the connection suite's tables and method, in markdown.
conn_section() {
	echo "## Connections"
	echo
	echo "Each target of \`CONN_TARGETS\` ($CONN_TARGETS) is started afresh for the"
	echo "connection suite; GET /hello.txt. The tests, in this order, each after the"
	echo "previous test's connections are gone:"
	echo
	echo "- idle PSS: Pss (/proc/PID/smaps_rollup) and VmRSS of each serving process 2 s"
	echo "  after the first 200, median; after the loads: the same once the suite is over."
	echo "- close50: \`wrk -t1 -c50 -H 'Connection: close'\` on the fresh server, after a"
	echo "  ${WARMUP} s warm-up (close50-cold). ka50, ka1000, ka10000: keep-alive, \`wrk -t1"
	echo "  -c50\`, \`wrk -t2 -c1000\`, \`wrk -t2 -c10000\`, \`-d${DURATION}s --latency\` (wrk's 2 s"
	echo "  timeout: a request unanswered after 2 s is an error), each after a ${WARMUP} s"
	echo "  warm-up; ka50-cold is ka50's warm-up (a prefork server grows then, a child for"
	echo "  each client). close50-after: close50 again after the keep-alive tests (a"
	echo "  prefork server still has the children ka50 grew it to). Descriptor limit:"
	echo "  $(ulimit -n). The prefork targets skip the tests above 64 connections (a"
	echo "  connection holds a child)."
	echo "- slowloris: \`bench/slowloris -conns N -interval ${SLOW_INTERVAL}s -hold ${SLOW_HOLD}s"
	echo "  -probe-timeout 5s\`: N connections send a request line and then one header"
	echo "  byte every ${SLOW_INTERVAL} s; meanwhile a normal GET on a new connection every"
	echo "  200 ms (the probe), timed from the dial to the end of the response; a failed"
	echo "  probe counts as 5 s."
	echo "- server CPU µs/req: the user and system CPU time of the server's processes (master,"
	echo "  children, helpers, and children that exited and were reaped meanwhile)"
	echo "  during the measurement, per request wrk completed; it depends much less than req/s"
	echo "  on what else the machine runs."
	echo
	cat "$CTABLE"
	echo
	echo "Every round:"
	echo
	echo "| round | target | test | req/s | p50 ms | p99 ms | errors | foreign CPU % | server CPU µs/req |"
	echo "|---:|---|---|---:|---:|---:|---:|---:|---:|"
	awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9}' "$CRAW"
	echo
	echo "| round | target | slow conns | opened | open at end | probes | failed | p50 ms | p99 ms | max ms |"
	echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10}' "$SRAW"
	echo
	echo "| round | target | procs | idle RSS KiB | idle PSS KiB | RSS after KiB | PSS after KiB |"
	echo "|---:|---|---:|---:|---:|---:|---:|"
	awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7}' "$MRAW"
	echo
}

if has_suite conns && [ "$CONN_RESULTS" != "-" ]; then
	{
		echo "# Connections: phased against nginx and Apache event"
		echo
		echo "Generated by \`bench/compare/run.sh\` (bench/compare/README.md)."
		echo
		echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); CPU: ${cpu_model:-unknown}; nproc: $(nproc); memory: $mem_total"
		echo "- load average before the run: $LOADAVG (a shared machine: see column foreign CPU %)"
		echo "- $(go version); $(wrk -v 2>&1 | head -1 | sed 's/ Copyright.*//'); $("$NGINX" -v 2>&1 | head -1); $("$APACHE" -v | head -1)"
		echo "- phased: commit $PHASED_DESC"
		[ -z "$BASELINE" ] || echo "- phased-base-*: the same configurations on the baseline binary $BASE_DESC"
		echo
		echo '```sh'
		echo "$env_desc$COMMAND    # from $(pwd)"
		echo '```'
		echo
		conn_section
	} >"$CONN_RESULTS"
	log "wrote $CONN_RESULTS"
fi
has_suite files || RESULTS=-
if [ "$RESULTS" != "-" ]; then
	{
		echo "# Benchmarks: phased against a bare Go server, nginx and Apache httpd"
		echo
		echo "Generated by \`bench/compare/run.sh\` (\`make bench\`); do not edit by hand."
		echo "bench/compare/README.md describes the method."
		echo
		echo "## Machine and versions"
		echo
		echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
		echo "- CPU: ${cpu_model:-unknown}; nproc: $(nproc); memory: $mem_total"
		echo "- kernel: $(uname -sr); $(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown OS}")"
		echo "- load average before the run: $LOADAVG (the machine may be shared; see column foreign CPU %)"
		echo "- $(go version)"
		echo "- $(wrk -v 2>&1 | head -1 | sed 's/ Copyright.*//')"
		echo "- $("$NGINX" -v 2>&1 | head -1)"
		echo "- $("$APACHE" -v | head -1)"
		echo "- phased: commit $PHASED_DESC (copied at the start of the run)"
		echo
		echo "## Command"
		echo
		echo '```sh'
		echo "$env_desc$COMMAND    # from $(pwd)"
		echo '```'
		echo
		echo "For each target and file: \`wrk -t1 -c$CONNS -d${WARMUP}s --latency URL\` (warm-up), then"
		echo
		echo '```sh'
		echo "wrk -t1 -c$CONNS -d${DURATION}s --latency http://127.0.0.1:PORT/hello.txt   # 6 bytes: hello and a newline"
		echo "wrk -t1 -c$CONNS -d${DURATION}s --latency http://127.0.0.1:PORT/4k.bin      # 4096 bytes"
		echo '```'
		echo
		echo "$ROUNDS round(s), the order of the targets rotated by one each round (the two files"
		echo "alternate their order); every figure is the median over the rounds. The prefork"
		echo "targets first get 1 s loads until they have $CONNS children (one per keep-alive connection)."
		echo
		echo "## Throughput"
		echo
		echo "x bare-go, x nginx: ratio of median req/s to bare-go's (one Go process, the file's"
		echo "bytes from memory) and to nginx's, for the same file. errors: wrk's socket errors plus"
		echo "non-2xx/3xx responses, summed. foreign CPU: share of all CPUs used by other processes"
		echo "during the measurement (max over the rounds); above ~10% the machine was loaded."
		echo
		cat "$TABLE"
		echo
		echo "## Processes, start and graceful restart"
		echo
		cat "$PTABLE"
		echo
		echo "- serving procs, RSS/PSS per child: VmRSS (/proc/PID/status) and Pss"
		echo "  (/proc/PID/smaps_rollup) of every serving process right after the loads, median:"
		echo "  phased's children (not its MPM plugin process), nginx's worker processes,"
		echo "  Apache's children, the bare server's one process. total RSS adds the master's"
		echo "  (and phased's MPM plugin process's)."
		echo "- start to first 200: from launching the server in the foreground to the first"
		echo "  200 for GET /hello.txt, polled every 5 ms over a fresh connection."
		echo "- graceful restart: from the restart command to the new generation serving."
		echo "  phased: \`phased -f CONF -k graceful\` (it returns once the new generation is"
		echo "  ready) and then a 200; nginx: \`nginx -p DIR/ -c CONF -s reload\`, then polled"
		echo "  every 5 ms until every worker PID is new and a GET gets a 200; Apache:"
		echo "  \`apache2 -f CONF -k graceful\`, then polled until every child PID is new and a"
		echo "  GET gets a 200. The restart follows the loads (prefork servers have about $CONNS"
		echo "  idle children then). old gone: from the command until every old serving process"
		echo "  has exited."
		echo
		if has_suite conns; then
			conn_section
		fi
		echo "## Servers and configs"
		echo
		echo "Each target runs in the foreground as the script's child, with its own config in"
		echo "a temp dir (\$TMP), on its own port from $PORT_BASE on 127.0.0.1, serving \$TMP/www:"
		echo
		echo '```sh'
		echo "bin/phased -f \$TMP/DIR/phased.yaml                                  # phased-*"
		echo "bench/mpm/bare -addr 127.0.0.1:PORT -root \$TMP/www -handler memory      # bare-go"
		echo "bench/mpm/bare -addr 127.0.0.1:PORT -root \$TMP/www -handler fileserver  # bare-fileserver"
		echo "nginx -p \$TMP/DIR/ -c \$TMP/DIR/nginx.conf -e \$TMP/DIR/error.log -g 'daemon off;'"
		echo "apache2 -f \$TMP/DIR/httpd.conf -DFOREGROUND                          # apache-*"
		echo '```'
		echo
		echo "Both bare servers use phased's default timeouts (bench/mpm/bare/main.go). The"
		echo "generated configs of this run (port and paths of its first round):"
		md_configs
		echo
		echo "## Every round"
		echo
		echo "| round | target | file | req/s | p50 ms | p99 ms | errors | foreign CPU % |"
		echo "|---:|---|---|---:|---:|---:|---:|---:|"
		awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8}' "$RAW"
		echo
		echo "| round | target | start to 200 ms | graceful restart ms | old gone ms | serving procs | RSS/proc KiB | PSS/proc KiB | total RSS KiB | ramp s |"
		echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
		awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10}' "$PROCS"
		echo
		echo "## Reference figures (issue #9)"
		echo
		echo "Measured earlier on the same 2-core machine with \`wrk -t1 -c50\` (medians of three"
		echo "interleaved runs): bare in-memory Go handler 68,557 req/s; Go http.FileServer 36,889"
		echo "(6 bytes) and 27,236 (4 KiB); nginx 1.22 with two workers 64,912 and 64,866; Apache 2.4"
		echo "event/worker/prefork 20,136/23,640/28,354 (6 bytes)."
		md_warnings
	} >"$RESULTS"
	log "wrote $RESULTS"
fi
