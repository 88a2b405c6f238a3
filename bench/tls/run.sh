#!/usr/bin/env bash
# bench/tls/run.sh: phased's TLS listener against nginx with the same
# certificate, on 127.0.0.1, side by side in one interleaved run (issue #17).
#
#   sudo bench/tls/run.sh                        # 3 interleaved rounds (~7 min); writes bench/tls/RESULTS.md
#   ROUNDS=1 DURATION=3 RESULTS=- bench/tls/run.sh   # a quick look
#
# Both servers serve a temp document root holding hello.txt (6 bytes) and
# 4k.bin (4096 bytes) over TLS (1.2 and 1.3, the same modern suites), with
# one generated ECDSA P-256 certificate (CERT=rsa: RSA 2048) for localhost
# and 127.0.0.1, HTTP/2 by ALPN, session tickets on:
#
#   phased   bin/phased, mpm event: start 2, 25 threads/child, min/max spare threads 25/75
#   nginx    nginx, worker_processes 2, access_log off, sendfile, open_file_cache,
#            ssl_session_cache shared:SSL:10m, ssl_session_tickets on, listen ... ssl http2
#
# For each server, each round (the order of the servers alternates):
#
#   1. keep-alive HTTPS: per file, WARMUP s of wrk, then
#        wrk -t1 -cCONNS -dDURATIONs --latency https://127.0.0.1:PORT/FILE
#   2. new TLS handshakes per second, full and resumed: bench/tls/handshake
#      (a Go client) with HS_CONNS goroutines, each opening a connection,
#      handshaking (TLS 1.3, X25519), GETting /hello.txt with Connection:
#      close and closing, again and again for DURATION s after 1 s of
#      warm-up; -resume offers the previous connection's session ticket.
#      The resumed column is valid only when the client saw every handshake
#      resume (column "resumed %").
#   3. HTTP/2: per file,
#        h2load -t1 -cCONNS -mH2_STREAMS -DDURATION --warm-up-time=WARMUP https://127.0.0.1:PORT/FILE
#
# With each figure goes the server's CPU time per request (or handshake):
# the user and system time of its master and children (/proc/PID/stat)
# during the load over the requests answered, which other work on a shared
# machine moves much less than req/s; and the load generator's own CPU
# time per request (this shell's reaped children's, less the server's).
# The table's "x nginx by CPU" is nginx's CPU per request over phased's.
#
# Every figure in the table is the median over the rounds; x nginx is
# phased's median over nginx's, against the issue's targets: keep-alive and
# HTTP/2 req/s at least nginx's (1.0), full handshakes at least 0.8x, resumed
# at least 1.0x.
#
# Environment: ROUNDS (3), DURATION (8, seconds), WARMUP (2, seconds),
# CONNS (50), HS_CONNS (16), H2_STREAMS (10), CERT (ecdsa or rsa; ecdsa),
# PORT_BASE (18700), RESULTS (bench/tls/RESULTS.md; "-" for none), KEEP_TMP
# (0), QUIET_MAX (15) and QUIET_TIMEOUT (60) as in bench/compare/run.sh,
# PATIENCE (10, minutes), ONLY (all; a comma-separated subset of https,
# handshake, h2: the parts of step 1-3 to run, e.g. ONLY=h2; the table
# then has only their rows), BASELINE (none; another phased binary, run
# as a third server, phased-base, in the same rounds: before/after in one
# run, its figures in columns of their own).
#
# Needs root: it installs wrk, nginx, nghttp2-client (h2load) and openssl
# from Debian when they are missing, and starts nginx as root (its workers
# switch to www-data). The system's nginx is never touched: it runs with its
# own config file in a temp dir.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=bench/compare/lib.sh
. "$REPO/bench/compare/lib.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-50}
HS_CONNS=${HS_CONNS:-16}
H2_STREAMS=${H2_STREAMS:-10}
CERT=${CERT:-ecdsa}
PORT_BASE=${PORT_BASE:-18700}
RESULTS=${RESULTS:-$REPO/bench/tls/RESULTS.md}
KEEP_TMP=${KEEP_TMP:-0}
QUIET_MAX=${QUIET_MAX:-15}
QUIET_TIMEOUT=${QUIET_TIMEOUT:-60}
PATIENCE=${PATIENCE:-10}
ONLY=${ONLY:-https,handshake,h2}
BASELINE=${BASELINE:-}
PHASED=$REPO/bin/phased
NGINX=/usr/sbin/nginx
FILES=(hello.txt 4k.bin)
TARGETS=(phased nginx)
COMMAND="$0${*:+ $*}"
for v in ROUNDS DURATION WARMUP CONNS HS_CONNS H2_STREAMS PORT_BASE KEEP_TMP QUIET_MAX QUIET_TIMEOUT PATIENCE; do
	if ! [[ ${!v} =~ ^[0-9]+$ ]]; then
		echo "run.sh: $v must be a whole number, not '${!v}'" >&2
		exit 2
	fi
done
[ "$ROUNDS" -ge 1 ] && [ "$DURATION" -ge 1 ] && [ "$CONNS" -ge 1 ] && [ "$HS_CONNS" -ge 1 ] || die "ROUNDS, DURATION, CONNS and HS_CONNS must be at least 1"
case $CERT in ecdsa | rsa) ;; *) die "CERT must be ecdsa or rsa, not '$CERT'" ;; esac
for part in ${ONLY//,/ }; do
	case $part in https | handshake | h2) ;; *) die "ONLY must list some of https, handshake, h2, not '$part'" ;; esac
done
# runs PART: whether ONLY asks for that part of the suite.
runs() { [[ ",$ONLY," == *",$1,"* ]]; }
if [ -n "$BASELINE" ]; then
	[ -x "$BASELINE" ] || die "BASELINE $BASELINE is not an executable"
	TARGETS=(phased phased-base nginx)
fi
env_desc=""
for v in ROUNDS DURATION WARMUP CONNS HS_CONNS H2_STREAMS CERT ONLY BASELINE; do
	[ -z "${!v}" ] || env_desc+="$v=${!v} "
done

# --- what this script started, for the trap --------------------------------
TMP=""
CUR_PID=""
CUR_CHILDREN=""
LOAD_PID=""

trap 'end_run $?' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. tools ----------------------------------------------------------------
install_missing wrk=wrk h2load=nghttp2-client openssl=openssl "$NGINX=nginx"
command -v go >/dev/null 2>&1 || die "go is not on PATH"
command -v curl >/dev/null 2>&1 || die "curl is not on PATH"
[ "$(id -u)" = 0 ] || die "nginx is started as root here (its workers switch to www-data): run as root"

# --- 2. binaries, files, certificate -------------------------------------------
[ -x "$PHASED" ] || make -C "$REPO" build >/dev/null
TMP=$(mktemp -d /tmp/phased-bench-tls.XXXXXX)
chmod 755 "$TMP"
PHASED_DESC="$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$REPO" && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && echo ' (with uncommitted changes)'), bin/phased built $(date -u -r "$PHASED" '+%Y-%m-%d %H:%M UTC')"
cp "$PHASED" "$TMP/phased"
PHASED=$TMP/phased
if [ -n "$BASELINE" ]; then
	BASE_DESC="$BASELINE, built $(date -u -r "$BASELINE" '+%Y-%m-%d %H:%M UTC')"
	cp "$BASELINE" "$TMP/phased-base"
fi
log "building bench/tls/handshake"
(cd "$REPO" && go build -o "$TMP/handshake" ./bench/tls/handshake)

make_www

# One certificate for both servers (the key stays root's: both masters read
# it as root before their workers run).
CERTDIR=$TMP/cert
mkdir -p "$CERTDIR"
case $CERT in
ecdsa) keyopt=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) ;;
rsa) keyopt=(-newkey rsa:2048) ;;
esac
openssl req -x509 "${keyopt[@]}" -nodes -days 30 -subj /CN=localhost \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	-keyout "$CERTDIR/site.key" -out "$CERTDIR/site.crt" 2>"$TMP/openssl.log" ||
	die "openssl req failed: $(cat "$TMP/openssl.log")"
chmod 600 "$CERTDIR/site.key"

save_conf() {
	[ -f "$TMP/configs/$1" ] || sed "s#$TMP#\$TMP#g" "$2" >"$TMP/configs/$1"
}

phased_conf() { # PORT DIR
	local port=$1 dir=$2
	mkdir -p "$dir"
	cat >"$dir/phased.yaml" <<EOF
server_root: $dir
listen:
  - address: 127.0.0.1:$port
    tls:
      certificates: [{cert: $CERTDIR/site.crt, key: $CERTDIR/site.key}]
pid_file: $dir/phased.pid
document_root: $WWW
error_log: {path: $dir/error.log, level: warn, format: json}
access_log: {path: ""}
mpm:
  name: event
  start_servers: 2
  threads_per_child: 25
  min_spare_threads: 25
  max_spare_threads: 75
  max_request_workers: 150
EOF
	"$PHASED" -f "$dir/phased.yaml" -t >/dev/null 2>"$dir/check.log" ||
		die "phased -t rejects $dir/phased.yaml: $(cat "$dir/check.log")"
	save_conf phased.yaml "$dir/phased.yaml"
}

nginx_conf() { # PORT DIR
	local port=$1 dir=$2
	mkdir -p "$dir/tmp"
	cat >"$dir/nginx.conf" <<EOF
user www-data;
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events {
    worker_connections 1024;
}
http {
$(nginx_http_common "$dir")
    ssl_certificate $CERTDIR/site.crt;
    ssl_certificate_key $CERTDIR/site.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;
    server {
        listen 127.0.0.1:$port ssl http2;
        root $WWW;
    }
}
EOF
	"$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" -t >/dev/null 2>"$dir/check.log" ||
		die "nginx -t rejects $dir/nginx.conf: $(cat "$dir/check.log")"
	save_conf nginx.conf "$dir/nginx.conf"
}

# https_code PATH: the status code of one GET over HTTPS ("000" on failure).
https_code() {
	curl -ks -o /dev/null -w '%{http_code}' --max-time 2 "https://127.0.0.1:$PORT$1" 2>/dev/null || true
}

# start_target TARGET DIR: writes the config, starts TARGET in the
# foreground on a free port and waits until it answers over HTTPS and HTTP/2.
start_target() {
	local t=$1 dir=$2 code deadline f size
	local -a cmd
	pick_port
	case $t in
	phased)
		phased_conf "$PORT" "$dir"
		cmd=("$PHASED" -f "$dir/phased.yaml")
		;;
	phased-base)
		phased_conf "$PORT" "$dir"
		cmd=("$TMP/phased-base" -f "$dir/phased.yaml")
		;;
	nginx)
		nginx_conf "$PORT" "$dir"
		cmd=("$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" -g "daemon off;")
		;;
	esac
	setsid "${cmd[@]}" >>"$dir/stderr.log" 2>&1 &
	CUR_PID=$!
	MASTER=$CUR_PID
	deadline=$((SECONDS + 20))
	while :; do
		code=$(https_code /hello.txt)
		[ "$code" = 200 ] && break
		gone "$CUR_PID" && die "$t exited before serving: $(tail -5 "$dir/stderr.log" "$dir/error.log" 2>/dev/null)"
		[ $SECONDS -lt $deadline ] || die "$t: no 200 over HTTPS on port $PORT within 20 s (last code $code)"
		sleep 0.02
	done
	for f in "${FILES[@]}"; do
		size=$(curl -ksS --http2 -o /dev/null -w '%{http_version} %{size_download}' --max-time 5 "https://127.0.0.1:$PORT/$f") ||
			die "$t: GET /$f over HTTP/2 failed"
		[ "$size" = "2 $(stat -c %s "$WWW/$f")" ] || die "$t: GET /$f over HTTP/2 returned (version, bytes) $size"
	done
}

# server_cpu: the CPU time (jiffies) of the server: its master and every
# child it has now (phased's children and MPM plugin, nginx's workers).
server_cpu() {
	local p n=0 v
	for p in "$MASTER" $(children_of "$MASTER"); do
		v=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null) || continue
		n=$((n + ${v:-0}))
	done
	echo "$n"
}

# measure OUT CMD...: runs CMD in the background (the trap can stop it),
# its output in OUT; sets FOREIGN, the share of the CPUs other processes
# used meanwhile, SRV_JIFFIES, the server's CPU time meanwhile, and
# CLIENT_JIFFIES, the load generator's (wrk, h2load, handshake: on two
# cores it competes with the server for them).
measure() {
	local out=$1 c0 c1 o0 o1 s0
	shift
	# shellcheck disable=SC2046
	set -- "$@" -- $(printf '%s\n' "$MASTER" $(children_of "$MASTER") | sort -u)
	local -a cmd=() pids=()
	while [ "$1" != -- ]; do
		cmd+=("$1")
		shift
	done
	shift
	pids=("$@")
	c0=$(cpu_now)
	o0=$(our_cpu "${pids[@]}")
	s0=$(server_cpu)
	"${cmd[@]}" >"$out" 2>&1 &
	LOAD_PID=$!
	wait "$LOAD_PID" || die "${cmd[0]} failed: $(tail -5 "$out")"
	LOAD_PID=""
	SRV_JIFFIES=$(($(server_cpu) - s0))
	o1=$(our_cpu "${pids[@]}")
	c1=$(cpu_now)
	CLIENT_JIFFIES=$((o1 - o0 - SRV_JIFFIES))
	FOREIGN=$(foreign_pct "$c0" "$c1" "$o0" "$o1")
}

# cpu_per RATE [JIFFIES]: the server's (or JIFFIES') CPU microseconds per
# request (or handshake) of the last measurement, which ran LOAD_SECS s
# (its warm-up included) at about RATE per second.
cpu_per() {
	awk -v j="${2:-$SRV_JIFFIES}" -v r="$1" -v d="$LOAD_SECS" -v hz="$(getconf CLK_TCK)" 'BEGIN {
		if (r <= 0) { print "-"; exit }
		printf "%.1f", j * 1e6 / hz / (r * d) }'
}

# parse_h2load FILE: sets RPS and ERRS from h2load's output.
parse_h2load() {
	RPS=$(awk '/^finished in/ {for (i = 1; i <= NF; i++) if ($(i + 1) ~ /^req\/s/) {printf "%.0f", $i; exit}}' "$1")
	ERRS=$(awk '/^requests:/ {print $10 + $12; exit}' "$1")
	[ -n "$RPS" ] || die "cannot parse h2load output $1: $(cat "$1")"
}

# parse_hs FILE: sets RPS (handshakes/s), RESUMED (%) and ERRS.
parse_hs() {
	read -r RPS RESUMED ERRS < <(awk '/^handshakes\/s/ {printf "%.0f %.0f %d\n", $2, ($4 > 0 ? $6 * 100 / $4 : 0), $8}' "$1")
	[ -n "$RPS" ] || die "cannot parse handshake output $1: $(cat "$1")"
}

# --- 3. rounds -------------------------------------------------------------------
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
PATIENCE_END=$((SECONDS + PATIENCE * 60))
RAW=$TMP/raw.tsv # round target test rps p50 p99 errors resumed% foreign cpu-us-per-request client-cpu-us-per-request
: >"$RAW"
row() { # ROUND TARGET TEST RPS P50 P99 ERRS RESUMED FOREIGN (the server's and the client's CPU per request from cpu_per)
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" "$(cpu_per "$4")" "$(cpu_per "$4" "$CLIENT_JIFFIES")" >>"$RAW"
	log "round $1 $2 $3: $4/s, p50 $5 ms, p99 $6 ms, errors $7, resumed $8%, foreign CPU $9%, server CPU $(cpu_per "$4") us each, client CPU $(cpu_per "$4" "$CLIENT_JIFFIES") us each"
}
log "$ROUNDS rounds of ${TARGETS[*]} over TLS ($CERT certificate; $ONLY)"
for ((r = 1; r <= ROUNDS; r++)); do
	for ((k = 0; k < ${#TARGETS[@]}; k++)); do
		t=${TARGETS[$(((k + r - 1) % ${#TARGETS[@]}))]}
		dir=$TMP/r$r-$t
		wait_quiet
		start_target "$t" "$dir"
		for f in "${FILES[@]}"; do
			runs https || break
			url=https://127.0.0.1:$PORT/$f
			measure "$dir/warm-${f%%.*}.txt" wrk -t1 "-c$CONNS" "-d${WARMUP}s" "$url"
			measure "$dir/wrk-${f%%.*}.txt" wrk -t1 "-c$CONNS" "-d${DURATION}s" --latency "$url"
			parse_wrk "$dir/wrk-${f%%.*}.txt"
			LOAD_SECS=$DURATION
			row "$r" "$t" "https $f" "$RPS" "$P50" "$P99" "$ERRS" - "$FOREIGN"
		done
		for mode in full resumed; do
			runs handshake || break
			flags=()
			[ $mode = resumed ] && flags=(-resume)
			measure "$dir/hs-$mode.txt" "$TMP/handshake" -addr "127.0.0.1:$PORT" -c "$HS_CONNS" -d "${DURATION}s" -warmup 1s "${flags[@]}"
			parse_hs "$dir/hs-$mode.txt"
			LOAD_SECS=$((DURATION + 1))
			row "$r" "$t" "handshake $mode" "$RPS" - - "$ERRS" "$RESUMED" "$FOREIGN"
		done
		for f in "${FILES[@]}"; do
			runs h2 || break
			measure "$dir/h2-${f%%.*}.txt" h2load -t1 "-c$CONNS" "-m$H2_STREAMS" "-D$DURATION" "--warm-up-time=$WARMUP" "https://127.0.0.1:$PORT/$f"
			parse_h2load "$dir/h2-${f%%.*}.txt"
			LOAD_SECS=$((DURATION + WARMUP))
			row "$r" "$t" "h2 $f" "$RPS" - - "$ERRS" - "$FOREIGN"
		done
		CUR_CHILDREN=$(children_of "$MASTER")
		stop_server
		collect_warnings "$dir" "round $r $t"
	done
done

# --- 4. table ----------------------------------------------------------------------
col() { # TARGET TEST COLUMN: the median of a column of RAW over the rounds
	awk -F'\t' -v t="$1" -v s="$2" -v c="$3" '$1 != "" && $2 == t && $3 == s && $c != "-" {print $c}' "$RAW" | median
}
TABLE=$TMP/table.md
{
	bh="" bs=""
	[ -z "$BASELINE" ] || bh=" phased-base /s | phased-base CPU µs each |" bs="---:|---:|"
	echo "| measure | phased /s | nginx /s | x nginx | target | met | x nginx by CPU | server CPU µs each (phased, nginx) | phased p99 ms | nginx p99 ms | errors (phased, nginx) | resumed % (phased, nginx) | foreign CPU % max | client CPU µs each (phased, nginx) |$bh"
	echo "|---|---:|---:|---:|---:|---|---:|---|---:|---:|---|---|---:|---|$bs"
	for s in "https hello.txt" "https 4k.bin" "handshake full" "handshake resumed" "h2 hello.txt" "h2 4k.bin"; do
		runs "${s%% *}" || continue
		base=""
		[ -z "$BASELINE" ] || base=" $(col phased-base "$s" 4 | awk '{printf($1 == "-" ? "-" : "%.0f", $1)}') | $(col phased-base "$s" 10) |"
		goal=1.0
		[ "$s" = "handshake full" ] && goal=0.8
		label=$s
		case $s in
		"https hello.txt") label="keep-alive HTTPS, 6 B (wrk)" ;;
		"https 4k.bin") label="keep-alive HTTPS, 4 KiB (wrk)" ;;
		"handshake full") label="new TLS handshakes, full" ;;
		"handshake resumed") label="new TLS handshakes, resumed" ;;
		"h2 hello.txt") label="HTTP/2, 6 B (h2load)" ;;
		"h2 4k.bin") label="HTTP/2, 4 KiB (h2load)" ;;
		esac
		ep=$(awk -F'\t' -v s="$s" '$2 == "phased" && $3 == s {n += $7} END {print n + 0}' "$RAW")
		en=$(awk -F'\t' -v s="$s" '$2 == "nginx" && $3 == s {n += $7} END {print n + 0}' "$RAW")
		rp=$(col phased "$s" 8)
		rn=$(col nginx "$s" 8)
		fmax=$(awk -F'\t' -v s="$s" '$3 == s && $9 > m {m = $9} END {print m + 0}' "$RAW")
		awk -v l="$label" -v p="$(col phased "$s" 4)" -v n="$(col nginx "$s" 4)" -v g="$goal" -v cpu="$(col phased "$s" 10), $(col nginx "$s" 10)" -v cp="$(col phased "$s" 10)" -v cn="$(col nginx "$s" 10)" \
			-v pp="$(col phased "$s" 6)" -v np="$(col nginx "$s" 6)" -v e="$ep, $en" -v rs="$rp, $rn" -v f="$fmax" -v b="$base" -v cl="$(col phased "$s" 11), $(col nginx "$s" 11)" 'BEGIN {
			x = (n > 0 ? p / n : 0)
			xc = (cp > 0 && cn > 0 ? sprintf("%.2f", cn / cp) : "-")
			printf "| %s | %.0f | %.0f | %.2f | >= %.1f | %s | %s | %s | %s | %s | %s | %s | %s | %s |%s\n", l, p, n, x, g, (x >= g ? "yes" : "**no**"), xc, cpu, pp, np, e, (rs == "-, -" ? "-" : rs), f, cl, b }'
	done
} >"$TABLE"
echo
echo "phased against nginx over TLS (medians of $ROUNDS round(s)):"
echo
cat "$TABLE"
show_warnings

if [ "$RESULTS" != "-" ]; then
	cpu_model=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
	{
		echo "# TLS benchmark: phased against nginx with the same certificate"
		echo
		echo "Generated by \`bench/tls/run.sh\` (\`make bench\`); the header of the script describes"
		echo "the method. The section \"Findings\" below the generated part is kept by hand."
		echo
		echo "## Machine and versions"
		echo
		echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
		echo "- CPU: ${cpu_model:-unknown}; nproc: $(nproc); load average before the run: $LOADAVG (the machine may be shared; see foreign CPU %)"
		echo "- kernel: $(uname -sr); $(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown OS}")"
		echo "- $(go version); $("$NGINX" -v 2>&1 | head -1); $(openssl version)"
		echo "- $(wrk -v 2>&1 | head -1 | sed 's/ Copyright.*//'); $(h2load --version | head -1)"
		echo "- phased: commit $PHASED_DESC"
		[ -z "$BASELINE" ] || echo "- phased-base: the same configuration on the baseline binary $BASE_DESC"
		echo "- certificate: $CERT ($(openssl x509 -in "$CERTDIR/site.crt" -noout -text | awk '/Public Key Algorithm|Public-Key|ASN1 OID/ {sub(/^ +/, ""); printf "%s; ", $0}'))"
		echo
		echo "## Command"
		echo
		echo '```sh'
		echo "$env_desc$COMMAND    # from $(pwd)"
		echo '```'
		echo
		echo '```sh'
		! runs https || echo "wrk -t1 -c$CONNS -d${DURATION}s --latency https://127.0.0.1:PORT/hello.txt   # after ${WARMUP}s of the same; then 4k.bin"
		! runs handshake || echo "bench/tls/handshake -addr 127.0.0.1:PORT -c $HS_CONNS -d ${DURATION}s -warmup 1s            # full handshakes"
		! runs handshake || echo "bench/tls/handshake -addr 127.0.0.1:PORT -c $HS_CONNS -d ${DURATION}s -warmup 1s -resume    # resumed"
		! runs h2 || echo "h2load -t1 -c$CONNS -m$H2_STREAMS -D$DURATION --warm-up-time=$WARMUP https://127.0.0.1:PORT/hello.txt   # then 4k.bin"
		echo '```'
		echo
		echo "## Results"
		echo
		echo "Medians over $ROUNDS interleaved round(s). x nginx: phased's over nginx's; target:"
		echo "the issue's (at least nginx's req/s, 0.8x its full and 1.0x its resumed handshakes)."
		echo "A handshake is a new connection that handshakes, GETs /hello.txt and closes."
		echo "resumed %: the share of the client's handshakes that resumed a session. server CPU"
		echo "µs each: the CPU time (user + system, /proc/PID/stat) of the server's master and"
		echo "children during the load, over the requests (or handshakes) it answered: unlike"
		echo "req/s it hardly moves when other work shares the machine (column foreign CPU)."
		echo "x nginx by CPU: nginx's server CPU µs each over phased's, the same comparison"
		echo "by what each request costs, which foreign work moves much less than the rates."
		echo "client CPU µs each: the load generator's (wrk, h2load, bench/tls/handshake), which"
		echo "shares the two cores with the server: where it is near the server's, as for"
		echo "handshakes, the rate is the machine's CPU over both sums, and foreign work moves it."
		echo
		cat "$TABLE"
		echo
		echo "## Every round"
		echo
		echo "| round | server | measure | /s | p50 ms | p99 ms | errors | resumed % | foreign CPU % | server CPU µs each | client CPU µs each |"
		echo "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
		awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11}' "$RAW"
		echo
		echo "## Configs"
		md_configs
		md_warnings
		# The hand-kept part of the previous file.
		if [ -f "$RESULTS" ] && grep -q '^## Findings' "$RESULTS"; then
			echo
			sed -n '/^## Findings/,$p' "$RESULTS"
		fi
	} >"$RESULTS.new"
	mv "$RESULTS.new" "$RESULTS"
	log "wrote $RESULTS"
fi
