#!/bin/sh
# Sleeps QUERY_STRING seconds (at most 300) before it answers: a request for
# /cgi-bin/slow.sh?120 outlives app.cgi.timeout and shows what happens then
# (the script and what it started are killed; the client gets 504).
seconds=$(printf '%s' "$QUERY_STRING" | tr -cd 0-9)
[ -n "$seconds" ] && [ "$seconds" -le 300 ] || seconds=1
sleep "$seconds"
printf 'Content-Type: text/plain\r\n\r\nslept %s s\n' "$seconds"
