#!/usr/bin/env bash
# bench/apps/run.sh: apps behind phased against their standard deployments,
# side by side in one run, on 127.0.0.1 (issue #15, item 7):
#
#   wsgi   hello world (bench/apps/hello.py) on 4 gunicorn sync workers
#          phased:  event MPM, 2 children x 8 slots, each child a gunicorn
#                   with 2 workers on its unix socket (WSGI_LAYOUTS)
#          nginx:   one gunicorn with 4 workers on a unix socket, nginx
#                   (2 worker processes) proxy_pass to it, as gunicorn's docs
#                   deploy it
#          The same gunicorn (sync workers, 4 in all, unix sockets) on both
#          sides; what the layout may not do is throttle the app where
#          nginx does not. nginx keeps every request it has at gunicorn
#          (up to wrk's 16 at once; gunicorn's socket backlog queues them),
#          so a sync worker that finishes accepts the next at once. With
#          as many slots as workers (2 x 2 slots, the layout before), a
#          worker waits between requests for its child to turn round
#          (answer the client, take the next request, connect again) and,
#          idle, goes through its select() loop: 66% of its requests began
#          there against 12% behind nginx (perf stat of gunicorn's
#          pselect6), and both gunicorn's CPU per request and the child's
#          were higher (bench/apps/RESULTS.md). 8 slots a child let 16
#          requests at the apps, as nginx does with 16 clients.
#          A second nginx server on the same gunicorn also sends the app
#          the two headers phased adds (X-Forwarded-Host, X-Request-Id):
#          its rows ("same headers") compare the proxies at equal work.
#          phased's children are bound to CPUs (worker_cpu_affinity auto:
#          child 0 and its gunicorn on one CPU, child 1 and its gunicorn
#          on the other), so that a request and its answer change hands
#          on the CPU that runs both ends; a third nginx, with nginx's own
#          worker_cpu_affinity auto, gives rows "nginx bound" (its workers
#          bound; the pool they share cannot be).
#          WSGI_LAYOUTS="CxSxW[:AFFINITY] ..." measures other layouts (C
#          children x S slots, W workers each, worker_cpu_affinity
#          AFFINITY, default auto: 2x8x2:none is the same unbound) side by
#          side, each its own row.
#   rack   examples/app-rack/config.ru (GET /health), 4 single-threaded app
#          processes
#          phased:  event MPM, 4 children x 1 slot, each child a puma -t 1:1
#                   on its unix socket, bound with it (APP_AFFINITY: two
#                   children on each CPU)
#          Apache + Passenger: event MPM, PassengerMinInstances =
#                   PassengerMaxPoolSize = 4
#   php    hello world (bench/apps/hello.php), 8 php-cgi processes
#          phased:  event MPM, 2 children x 4 slots, each child a php-cgi -b
#                   with PHP_FCGI_CHILDREN=4, bound with it (one on each CPU)
#          Apache + mod_fcgid: event MPM, FcgidMaxProcessesPerClass 8, php-cgi
#                   as the FcgidWrapper
#
# Every server starts once, in the foreground as this shell's child, on its
# own config in a temp dir (never the system's nginx or Apache), with no
# access log. Then ROUNDS rounds; in each, every target in turn (the order
# rotated by one each round, so that the two sides of a pair are measured
# minutes apart at most and under the same outside load: other jobs share
# this 2-core machine) gets WARMUP s of wrk, then
#
#   wrk -t2 -cCONNS -dDURATIONs --latency http://127.0.0.1:PORT/PATH
#
# The table gives medians over the rounds of req/s and p99, and the ratios
# phased / anchor (req/s: higher is better for phased; p99: lower is).
#
#   sudo bench/apps/run.sh                     # 3 rounds of 8 s (~5 min); writes its section of bench/apps/RESULTS.md
#   ROUNDS=1 DURATION=3 RESULTS=- bench/apps/run.sh   # a quick look
#   ONLY="rack" bench/apps/run.sh              # one pair (wsgi, rack, php)
#
# The table also gives the CPU time per request of the server's processes
# and of the app's (from /proc/PID/stat, before and after each wrk run).
#
# Environment: ROUNDS (3), DURATION (8), WARMUP (2), CONNS (16), PORT_BASE
# (19300), ONLY (pairs), RESULTS (bench/apps/RESULTS.md, its bench section;
# "-" for none), WSGI_LAYOUTS (2x8x2), BASELINE (another phased binary,
# measured beside bin/phased in every wsgi layout: rows "...-base"),
# APP_AFFINITY (auto: the rack and php pairs' worker_cpu_affinity), KEEP_TMP (0).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=bench/compare/lib.sh
. "$REPO/bench/compare/lib.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-16}
PORT_BASE=${PORT_BASE:-19300}
RESULTS=${RESULTS:-$REPO/bench/apps/RESULTS.md}
KEEP_TMP=${KEEP_TMP:-0}
WSGI_LAYOUTS=${WSGI_LAYOUTS:-2x8x2}
APP_AFFINITY=${APP_AFFINITY:-auto} # worker_cpu_affinity of the rack and php pairs' phased
BASELINE=${BASELINE:-}
ONLY=${ONLY:-wsgi rack php}
PHASED=$REPO/bin/phased
APACHE=/usr/sbin/apache2
MODS=/usr/lib/apache2/modules
COMMAND="$0${*:+ $*}"
for v in ROUNDS DURATION WARMUP CONNS PORT_BASE; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
read -r -a PAIRS <<<"$ONLY"
for p in "${PAIRS[@]}"; do
	case $p in wsgi | rack | php) ;; *) die "ONLY: unknown pair $p (wsgi rack php)" ;; esac
done
for l in $WSGI_LAYOUTS; do
	[[ $l =~ ^[1-9][0-9]*x[1-9][0-9]*x[1-9][0-9]*(:(none|auto))?$ ]] || die "WSGI_LAYOUTS: $l is not CHILDRENxSLOTSxWORKERS[:none|:auto]"
done
[ -z "$BASELINE" ] || [ -x "$BASELINE" ] || die "BASELINE: $BASELINE is not an executable"
[ "$(id -u)" = 0 ] || die "Apache and nginx are started as root here (their workers switch to www-data): run as root"
for prog in wrk nginx gunicorn puma php-cgi "$APACHE" "$MODS/mod_passenger.so" "$MODS/mod_fcgid.so"; do
	[ -e "$prog" ] || command -v "$prog" >/dev/null || die "$prog is missing (.ci/deps installs it)"
done
[ -x "$PHASED" ] || make -C "$REPO" build >/dev/null

TMP=$(mktemp -d /tmp/phased-bench-apps.XXXXXX)
chmod 755 "$TMP"
cp "$PHASED" "$TMP/phased" # a rebuild of bin/phased during the run changes nothing
PHASED=$TMP/phased
if [ -n "$BASELINE" ]; then
	cp "$BASELINE" "$TMP/phased-base"
	BASE=$TMP/phased-base
fi
PIDS=() # every server process this shell started

trap 'end_run $?' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME DIR CMD...: runs CMD in the background, output in DIR/NAME.out;
# its PID is PIDS' last.
start() {
	local name=$1 dir=$2
	shift 2
	(cd "$dir" && exec "$@") >"$dir/$name.out" 2>&1 &
	PIDS+=($!)
}

# tree_of PID...: those processes and all their descendants.
tree_of() {
	local p
	for p in "$@"; do
		echo "$p"
		# shellcheck disable=SC2046
		[ -z "$(children_of "$p")" ] || tree_of $(children_of "$p")
	done
}

# cpu_split TARGET: "SERVER APP", the CPU time (jiffies, user + system) so
# far of the target's server processes (phased's master and children,
# nginx's master and workers, Apache's) and of its app processes (gunicorn,
# puma, php-cgi, Passenger's), told apart by their command lines: the
# processes of ROOTS_OF[TARGET] and their descendants, each with the time
# of its children it reaped (php-cgi's and mod_fcgid's respawned PHP
# processes; mod_fcgid's are reaped by an Apache process, so their time
# counts as the server's there).
cpu_split() {
	local p cmd v srv=0 app=0
	# shellcheck disable=SC2046
	for p in $(tree_of ${ROOTS_OF[$1]}); do
		cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
		v=$(awk '{sub(/^.*\) /, ""); print $12 + $13 + $14 + $15}' "/proc/$p/stat" 2>/dev/null) || continue
		case $cmd in
		*gunicorn* | *puma* | *php-cgi* | *RubyApp*) app=$((app + ${v:-0})) ;;
		*) srv=$((srv + ${v:-0})) ;;
		esac
	done
	echo "$srv $app"
}

# ready PORT PATH NAME DIR: wait up to 60 s for a 200.
ready() {
	local deadline=$((SECONDS + 60))
	until [ "$(http_code "$1" "$2")" = 200 ]; do
		[ $SECONDS -lt $deadline ] || die "$3 never answered 200 on $1$2: $(tail -5 "$4"/*.out "$4"/*.log 2>/dev/null)"
		sleep 0.2
	done
}

declare -A PORT_OF PATH_OF ROOTS_OF
phased_app() { # NAME PATH MPM-AND-APP-YAML [BINARY]
	local name=$1 dir=$TMP/$1
	mkdir -p "$dir"
	pick_port
	{
		printf 'listen: ["127.0.0.1:%s"]\npid_file: %s/phased.pid\nerror_log: {path: %s/error.log, level: warn, format: json}\naccess_log: {path: ""}\n' "$PORT" "$dir" "$dir"
		printf '%s\n' "$3"
	} >"$dir/phased.yaml"
	start phased "$dir" "${4:-$PHASED}" -f "$dir/phased.yaml"
	ROOTS_OF[$name]=${PIDS[-1]}
	PORT_OF[$name]=$PORT PATH_OF[$name]=$2
	ready "$PORT" "$2" "$name" "$dir"
}

apache_conf() { # DIR PORT EXTRA
	cat <<EOF
ServerRoot $1
ServerName 127.0.0.1
Listen 127.0.0.1:$2
LoadModule mpm_event_module $MODS/mod_mpm_event.so
LoadModule authz_core_module $MODS/mod_authz_core.so
User www-data
Group www-data
PidFile $1/httpd.pid
DefaultRuntimeDir $1
Mutex file:$1 default
ErrorLog $1/error.log
LogLevel warn
KeepAlive On
KeepAliveTimeout 5
MaxKeepAliveRequests 0
StartServers 2
ThreadsPerChild 25
MinSpareThreads 25
MaxSpareThreads 75
MaxRequestWorkers 150
$3
EOF
}

# nginx_server PORT [HEADER...]: a server block on PORT passing every
# request to app_server as gunicorn's docs deploy it (X-Forwarded-For,
# -Proto, Host), with each HEADER ("Name value") set too.
nginx_server() {
	local port=$1 h
	shift
	printf '    server {\n        listen 127.0.0.1:%s;\n        location / {\n' "$port"
	for h in 'X-Forwarded-For $proxy_add_x_forwarded_for' 'X-Forwarded-Proto $scheme' 'Host $http_host' "$@"; do
		printf '            proxy_set_header %s;\n' "$h"
	done
	printf '            proxy_redirect off;\n            proxy_pass http://app_server;\n        }\n    }\n'
}

# nginx_conf DIR MAIN SOCKET SERVERS: an nginx.conf with its files in DIR,
# the main-level directives MAIN, and the server blocks SERVERS, passing
# to the gunicorn on unix socket SOCKET.
nginx_conf() {
	cat <<EOF
user www-data;
worker_processes 2;
$2
pid $1/nginx.pid;
error_log $1/error.log warn;
daemon off;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $1/tmp/body;
    proxy_temp_path $1/tmp/proxy;
    fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi;
    scgi_temp_path $1/tmp/scgi;
    keepalive_requests 1000000;
    upstream app_server { server unix:$3 fail_timeout=0; }
$4
}
EOF
}

setup_wsgi() {
	local dir=$TMP/nginx-gunicorn
	mkdir -p "$dir/tmp"
	cp "$REPO/bench/apps/hello.py" "$TMP/hello.py"
	local l bin tag
	for bin in "$PHASED" ${BASELINE:+"$BASE"}; do
		tag=""
		[ "$bin" = "$PHASED" ] || tag=-base
		for l in $WSGI_LAYOUTS; do
			IFS=: read -r shape pin <<<"$l"
			IFS=x read -r nc ns nw <<<"$shape"
			pin=${pin:-auto}
			if [ "$pin" != none ] && ! "$bin" -S 2>/dev/null | grep -q '^worker_cpu_affinity:'; then
				log "$bin has no worker_cpu_affinity: its $shape runs unbound"
				pin=none
			fi
			phased_app "phased-gunicorn-$l$tag" / "worker_cpu_affinity: $pin
mpm:
  name: event
  start_servers: $nc
  server_limit: $nc
  threads_per_child: $ns
  min_spare_threads: $ns
  max_spare_threads: $((nc * ns))
  max_request_workers: $((nc * ns))
app:
  type: http
  command: [gunicorn, --chdir, $TMP, --workers, '$nw', --bind, 'unix:{socket}', 'hello:app']
  stop_signal: TERM" "$bin"
			PHASED_OF[wsgi]+=" phased-gunicorn-$l$tag"
		done
	done
	start gunicorn "$dir" gunicorn --chdir "$TMP" --workers 4 --bind "unix:$dir/gunicorn.sock" hello:app
	ROOTS_OF[nginx-gunicorn]=${PIDS[-1]}
	pick_port
	local same=$PORT
	pick_port
	nginx_conf "$dir" "" "$dir/gunicorn.sock" "$(nginx_server "$PORT")
$(nginx_server "$same" 'X-Forwarded-Host $http_host' 'X-Request-Id $request_id')" >"$dir/nginx.conf"
	# nginx's own CPU binding (worker_cpu_affinity auto, a main-level
	# directive: a second nginx on the same gunicorn): its two workers
	# bound one to each CPU; the app's pool, which both share, is not.
	local main=$PORT
	pick_port
	local pinned=$PORT
	PORT=$main
	mkdir -p "$dir/pinned/tmp"
	nginx_conf "$dir/pinned" "worker_cpu_affinity auto;" "$dir/gunicorn.sock" "$(nginx_server "$pinned")" >"$dir/pinned/nginx.conf"
	local deadline=$((SECONDS + 30))
	until [ -S "$dir/gunicorn.sock" ]; do
		[ $SECONDS -lt $deadline ] || die "gunicorn never made its socket: $(tail -5 "$dir/gunicorn.out")"
		sleep 0.1
	done
	chmod 777 "$dir/gunicorn.sock" # nginx's workers are www-data
	start nginx "$dir" nginx -p "$dir" -c "$dir/nginx.conf"
	ROOTS_OF[nginx-gunicorn]+=" ${PIDS[-1]}"
	PORT_OF[nginx-gunicorn]=$PORT PATH_OF[nginx-gunicorn]=/
	ready "$PORT" / nginx-gunicorn "$dir"
	# The same nginx and gunicorn, nginx sending the app what phased sends
	# it (X-Forwarded-Host and X-Request-Id too): the two proxies at equal
	# work, for the table's second wsgi anchor.
	ROOTS_OF[nginx-same]=${ROOTS_OF[nginx-gunicorn]}
	PORT_OF[nginx-same]=$same PATH_OF[nginx-same]=/
	ready "$same" / nginx-same "$dir"
	start nginx "$dir/pinned" nginx -p "$dir/pinned" -c "$dir/pinned/nginx.conf"
	ROOTS_OF[nginx-pinned]="${ROOTS_OF[nginx-gunicorn]%% *} ${PIDS[-1]}"
	PORT_OF[nginx-pinned]=$pinned PATH_OF[nginx-pinned]=/
	ready "$pinned" / nginx-pinned "$dir/pinned"
}

setup_rack() {
	local dir=$TMP/passenger
	mkdir -p "$TMP/rack" "$dir/app/public" "$dir/reg"
	cp "$REPO/examples/app-rack/config.ru" "$TMP/rack/"
	cp "$REPO/examples/app-rack/config.ru" "$dir/app/"
	chmod -R a+rX "$TMP"
	phased_app phased-puma /health "worker_cpu_affinity: $APP_AFFINITY
mpm:
  name: event
  start_servers: 4
  server_limit: 4
  threads_per_child: 1
  min_spare_threads: 1
  max_spare_threads: 4
  max_request_workers: 4
app:
  type: http
  command: [puma, --dir, $TMP/rack, --environment, production, --bind, 'unix://{socket}', --threads, '1:1', config.ru]
  health_check: /health
  stop_signal: TERM"
	pick_port
	apache_conf "$dir" "$PORT" "LoadModule passenger_module $MODS/mod_passenger.so
PassengerRoot /usr/lib/ruby/vendor_ruby/phusion_passenger/locations.ini
PassengerDefaultRuby /usr/bin/ruby
PassengerInstanceRegistryDir $dir/reg
PassengerDisableSecurityUpdateCheck on
PassengerDisableAnonymousTelemetry on
PassengerDefaultUser www-data
PassengerDefaultGroup www-data
PassengerMaxPoolSize 4
PassengerMinInstances 4
PassengerAppRoot $dir/app
PassengerAppType rack
PassengerStartupFile config.ru
PassengerAppEnv production
DocumentRoot $dir/app/public
<Directory />
    Require all granted
</Directory>" >"$dir/httpd.conf"
	# Passenger makes its spawn folders (passenger.spawn.*, owned by the app
	# user) in TMPDIR and leaves some behind when Apache is stopped: give it
	# one of the run's own, which the trap removes.
	mkdir -p "$dir/tmp" && chmod 1777 "$dir/tmp"
	start apache "$dir" env TMPDIR="$dir/tmp" "$APACHE" -f "$dir/httpd.conf" -DFOREGROUND
	ROOTS_OF[passenger]=${PIDS[-1]}
	PORT_OF[passenger]=$PORT PATH_OF[passenger]=/health
	ready "$PORT" /health passenger "$dir"
	# Passenger spawns the rest of its pool after the first request: wait
	# for all 4 processes, as phased's 4 children are all up.
	local deadline=$((SECONDS + 60))
	until [ "$(pgrep -fc "RubyApp: $dir/app " || true)" -ge 4 ]; do
		[ $SECONDS -lt $deadline ] || die "Passenger never ran 4 app processes: $(tail -5 "$dir/error.log")"
		http_code "$PORT" /health >/dev/null
		sleep 0.2
	done
}

setup_php() {
	local dir=$TMP/fcgid www=$TMP/php
	mkdir -p "$dir" "$www"
	cp "$REPO/bench/apps/hello.php" "$www/"
	chmod -R a+rX "$TMP"
	phased_app phased-php /hello.php "document_root: $www
worker_cpu_affinity: $APP_AFFINITY
mpm:
  name: event
  start_servers: 2
  server_limit: 2
  threads_per_child: 4
  min_spare_threads: 4
  max_spare_threads: 8
  max_request_workers: 8
app:
  type: fastcgi
  command: [php-cgi, -b, '{socket}']
  env: {PHP_FCGI_CHILDREN: '4', PHP_FCGI_MAX_REQUESTS: '10000'}"
	pick_port
	apache_conf "$dir" "$PORT" "LoadModule fcgid_module $MODS/mod_fcgid.so
LoadModule mime_module $MODS/mod_mime.so
TypesConfig /etc/mime.types
FcgidIPCDir $dir/fcgid-sock
FcgidProcessTableFile $dir/fcgid-shm
FcgidMaxProcesses 8
FcgidMaxProcessesPerClass 8
FcgidMinProcessesPerClass 8
FcgidMaxRequestsPerProcess 10000
FcgidInitialEnv PHP_FCGI_MAX_REQUESTS 10000
DocumentRoot $www
<Directory $www>
    Options +ExecCGI
    AddHandler fcgid-script .php
    FcgidWrapper /usr/bin/php-cgi .php
    Require all granted
</Directory>" >"$dir/httpd.conf"
	start apache "$dir" "$APACHE" -f "$dir/httpd.conf" -DFOREGROUND
	ROOTS_OF[fcgid]=${PIDS[-1]}
	PORT_OF[fcgid]=$PORT PATH_OF[fcgid]=/hello.php
	ready "$PORT" /hello.php fcgid "$dir"
}

declare -A PHASED_OF=([rack]=phased-puma [php]=phased-php) # setup_wsgi sets wsgi's
# Each pair's anchors, the first its standard deployment; the others,
# measured in the same rounds, are that deployment doing what phased does
# more (X-Forwarded-Host and X-Request-Id: rows "same headers") or bound
# to CPUs by its own key (rows "nginx bound").
declare -A ANCHORS_OF=([wsgi]="nginx-gunicorn nginx-same nginx-pinned" [rack]=passenger [php]=fcgid)
declare -A DESC_OF=([nginx-gunicorn]="nginx proxy_pass + gunicorn" [passenger]="Apache + Passenger" [fcgid]="Apache + mod_fcgid"
	[nginx-same]="nginx proxy_pass + gunicorn, sending X-Forwarded-Host and X-Request-Id as phased does"
	[nginx-pinned]="nginx proxy_pass + gunicorn, nginx's workers bound to CPUs (worker_cpu_affinity auto)")
declare -A LABEL_OF=([nginx-same]="same headers" [nginx-pinned]="nginx bound")
TARGETS=()
for p in "${PAIRS[@]}"; do
	log "starting the $p pair"
	"setup_$p"
	# shellcheck disable=SC2206 # the list of phased targets, split
	TARGETS+=(${PHASED_OF[$p]} ${ANCHORS_OF[$p]})
done

declare -A RPS_OF P99_OF ERRS_OF SRV_OF APP_OF
for ((r = 0; r < ROUNDS; r++)); do
	n=${#TARGETS[@]}
	for ((i = 0; i < n; i++)); do
		t=${TARGETS[$(((i + r) % n))]}
		url="http://127.0.0.1:${PORT_OF[$t]}${PATH_OF[$t]}"
		wrk -t2 -c"$CONNS" -d"${WARMUP}s" "$url" >/dev/null 2>&1 || true
		read -r s0 a0 < <(cpu_split "$t")
		wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "$url" >"$TMP/wrk.out" 2>&1 || true
		read -r s1 a1 < <(cpu_split "$t")
		parse_wrk "$TMP/wrk.out"
		# CPU µs per request (jiffies of 10 ms) of the server and the app
		reqs=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
		su=$(awk -v j=$((s1 - s0)) -v n="${reqs:-0}" 'BEGIN {printf "%.0f", (n > 0 ? j * 10000 / n : 0)}')
		au=$(awk -v j=$((a1 - a0)) -v n="${reqs:-0}" 'BEGIN {printf "%.0f", (n > 0 ? j * 10000 / n : 0)}')
		log "round $((r + 1)) $t: $RPS req/s, p99 $P99 ms, $ERRS errors, CPU µs/req server $su app $au"
		RPS_OF[$t]+="$RPS " P99_OF[$t]+="$P99 " ERRS_OF[$t]=$((${ERRS_OF[$t]:-0} + ERRS))
		SRV_OF[$t]+="$su " APP_OF[$t]+="$au "
	done
done

med() { tr ' ' '\n' | grep . | median; }
table=$(
	echo "| app | phased req/s | anchor | anchor req/s | req/s ratio | phased p99 ms | anchor p99 ms | p99 ratio | CPU µs/req phased: server + app | anchor: server + app | errors (phased/anchor) |"
	echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for p in "${PAIRS[@]}"; do
		for a in ${PHASED_OF[$p]}; do
			for b in ${ANCHORS_OF[$p]}; do
				label=$p desc=${DESC_OF[$b]}
				[ "$a" = "${PHASED_OF[$p]# }" ] || label="$p (${a#phased-})"
				[ -z "${LABEL_OF[$b]:-}" ] || label="$label, ${LABEL_OF[$b]}"
				ra=$(med <<<"${RPS_OF[$a]}") rb=$(med <<<"${RPS_OF[$b]}")
				pa=$(med <<<"${P99_OF[$a]}") pb=$(med <<<"${P99_OF[$b]}")
				printf '| %s | %.0f | %s | %.0f | %.2f | %s | %s | %.2f | %s + %s | %s + %s | %s/%s |\n' "$label" "$ra" "$desc" "$rb" \
					"$(awk -v a="$ra" -v b="$rb" 'BEGIN {print a / b}')" "$pa" "$pb" \
					"$(awk -v a="$pa" -v b="$pb" 'BEGIN {print (b > 0 ? a / b : 0)}')" \
					"$(med <<<"${SRV_OF[$a]}")" "$(med <<<"${APP_OF[$a]}")" "$(med <<<"${SRV_OF[$b]}")" "$(med <<<"${APP_OF[$b]}")" \
					"${ERRS_OF[$a]}" "${ERRS_OF[$b]}"
			done
		done
	done
)
echo "$table"
# write_section FILE NAME: stdin in place of FILE's section between
# <!-- NAME:begin --> and <!-- NAME:end --> (appended when there is none);
# the app suite (go run ./bench/reliability -apps) writes its own section.
write_section() {
	local file=$1 begin="<!-- $2:begin -->" end="<!-- $2:end -->" text
	text=$(cat)
	[ -s "$file" ] || printf '# Apps behind phased: results\n' >"$file"
	if grep -qF "$begin" "$file"; then
		TEXT="$text" awk -v b="$begin" -v e="$end" '
			$0 == b {print; print ENVIRON["TEXT"]; print ""; skip = 1; next}
			$0 == e {skip = 0}
			!skip' "$file" >"$file.new"
		mv "$file.new" "$file"
	else
		printf '\n%s\n%s\n\n%s\n' "$begin" "$text" "$end" >>"$file"
	fi
}

if [ "$RESULTS" != - ]; then
	{
		echo "## Speed: apps behind phased vs their standard deployments"
		echo
		echo "Run $(date -u '+%Y-%m-%d %H:%M') UTC; command: \`$COMMAND\` (ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS WSGI_LAYOUTS=\"$WSGI_LAYOUTS\"${BASELINE:+ BASELINE=$BASELINE}; part of \`make bench\`); phased $(cd "$REPO" && git rev-parse --short HEAD)."
		echo
		echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, shared with other jobs while it ran: the rounds interleave the targets (the order rotated each round) so the two sides of a pair see the same outside load; medians over $ROUNDS rounds of \`wrk -t2 -c$CONNS -d${DURATION}s --latency\` after ${WARMUP} s of warm-up. Ratios are phased / anchor: above 1 is better for phased in req/s, below 1 in p99. CPU µs/req: the CPU time (user + system, /proc/PID/stat) of the server's processes and of the app's over each measured run, per request (medians); the machine is CPU-bound here, so req/s follows the sum."
		echo
		echo "$table"
		echo
		echo "Set-ups (the head of bench/apps/run.sh): wsgi: bench/apps/hello.py on 4 gunicorn sync workers, phased's event MPM with C children x S slots and a gunicorn of W workers per child (CxSxW[:worker_cpu_affinity], auto unless given: $WSGI_LAYOUTS; 2x8x2 lets as many requests at the apps as nginx does, see the script's head) vs one gunicorn of 4 workers behind nginx's proxy_pass (2 worker processes; \"nginx bound\": with worker_cpu_affinity auto), both on unix sockets. rack: examples/app-rack (GET /health) in 4 single-threaded processes, phased's event MPM with 4 children x 1 slot (puma -t 1:1 per child; worker_cpu_affinity $APP_AFFINITY) vs Apache's event MPM + Passenger (pool of 4). php: bench/apps/hello.php in 8 php-cgi processes, phased's event MPM with 2 children x 4 slots (worker_cpu_affinity $APP_AFFINITY; php-cgi -b, PHP_FCGI_CHILDREN=4, per child) vs Apache's event MPM + mod_fcgid (8 processes; its p99 near 1 s is mod_fcgid's own wait: a request that finds every PHP process busy sleeps a second in mod_fcgid's retry loop before it tries again)."
	} | write_section "$RESULTS" bench
	log "wrote $RESULTS"
fi
