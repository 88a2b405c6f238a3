#!/bin/sh
# make-cert.sh: a self-signed ECDSA P-256 certificate for localhost and
# 127.0.0.1, valid 90 days, in tls/site.crt and tls/site.key beside this
# script (the key readable by its owner only). For trying the example only:
# browsers and curl trust it only when told to (curl --cacert tls/site.crt).
# An existing pair is kept; -f makes a new one. Needs openssl.
set -eu
cd "$(dirname "$0")"
if [ -f tls/site.crt ] && [ -f tls/site.key ] && [ "${1:-}" != -f ]; then
	echo "tls/site.crt and tls/site.key exist (make-cert.sh -f replaces them)"
	exit 0
fi
mkdir -p tls
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 90 \
	-subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	-keyout tls/site.key -out tls/site.crt 2>/dev/null
chmod 644 tls/site.crt
echo "made tls/site.crt and tls/site.key: $(openssl x509 -in tls/site.crt -noout -subject -enddate | tr '\n' ' ')"
