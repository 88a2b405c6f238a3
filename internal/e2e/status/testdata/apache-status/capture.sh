#!/bin/sh
# capture.sh MPM PORT OUT: start Debian's Apache 2.4 (apt-get install
# apache2) with the given MPM (worker or event), mod_status and
# ExtendedStatus On on 127.0.0.1:PORT in a temporary folder, serve 2,000
# requests with ab, wait two seconds (so the uptime is not zero), write
# /server-status?auto to OUT and stop that Apache by its pid.
#
# It made apache-auto-worker.txt and apache-auto-event.txt:
#   sh capture.sh worker 18481 apache-auto-worker.txt
#   sh capture.sh event 18482 apache-auto-event.txt
set -eu
mpm=$1 port=$2 out=$3
mods=/usr/lib/apache2/modules
dir=$(mktemp -d)
mkdir -p "$dir/htdocs"
printf 'hello\n' >"$dir/htdocs/hello.txt"
cat >"$dir/httpd.conf" <<CONF
ServerRoot $dir
ServerName 127.0.0.1
Listen 127.0.0.1:$port
PidFile $dir/httpd.pid
ErrorLog $dir/error.log
LoadModule mpm_${mpm}_module $mods/mod_mpm_$mpm.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule authz_host_module $mods/mod_authz_host.so
LoadModule status_module $mods/mod_status.so
User www-data
Group www-data
StartServers 2
DocumentRoot $dir/htdocs
<Directory $dir/htdocs>
  Require all granted
</Directory>
ExtendedStatus On
<Location /server-status>
  SetHandler server-status
  Require ip 127.0.0.1
</Location>
CONF
chmod -R a+rX "$dir"
/usr/sbin/apache2 -f "$dir/httpd.conf" -DFOREGROUND &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do
	curl -fsS -o /dev/null "http://127.0.0.1:$port/hello.txt" 2>/dev/null && break
	sleep 0.1
done
ab -q -n 2000 -c 4 "http://127.0.0.1:$port/hello.txt" >/dev/null
sleep 2
curl -fsS "http://127.0.0.1:$port/server-status?auto" >"$out"
