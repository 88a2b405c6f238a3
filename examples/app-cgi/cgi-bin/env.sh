#!/bin/sh
# A CGI script in plain sh: it answers with the request as it reached it,
# the RFC 3875 meta-variables and the HTTP_* headers, one NAME=value a line.
. ./lib.sh   # scripts run in their own folder

header "text/plain; charset=utf-8"
for name in GATEWAY_INTERFACE SERVER_SOFTWARE SERVER_NAME SERVER_PORT SERVER_PROTOCOL \
	REQUEST_METHOD REQUEST_URI SCRIPT_NAME PATH_INFO QUERY_STRING CONTENT_TYPE CONTENT_LENGTH \
	REMOTE_ADDR REMOTE_PORT DOCUMENT_ROOT; do
	eval "value=\${$name-}"
	echo "$name=$value"
done
env | grep '^HTTP_' | sort
if [ "${CONTENT_LENGTH:-0}" -gt 0 ]; then
	echo "body=$(head -c "$CONTENT_LENGTH")"
fi
