#!/bin/sh
# make-certs.sh: the certificates of this example, in tls/ beside this
# script, each valid 90 days, ECDSA P-256, keys readable by their owner only:
#   tls/site.crt, site.key              the server's, self-signed, for localhost and 127.0.0.1
#   tls/clients-ca.crt, clients-ca.key  the authority client certificates chain to
#   tls/alice.crt, alice.key            a client certificate it signed (CN=alice)
# For trying the example only. Existing files are kept; -f makes new ones.
# Needs openssl.
set -eu
cd "$(dirname "$0")"
if [ -f tls/alice.crt ] && [ "${1:-}" != -f ]; then
	echo "tls/ has the certificates (make-certs.sh -f replaces them)"
	exit 0
fi
mkdir -p tls
umask 077
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
# shellcheck disable=SC2086
openssl req -x509 $ec -days 90 -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	-keyout tls/site.key -out tls/site.crt 2>/dev/null
# shellcheck disable=SC2086
openssl req -x509 $ec -days 90 -subj "/O=Example/CN=Example clients CA" \
	-keyout tls/clients-ca.key -out tls/clients-ca.crt 2>/dev/null
# shellcheck disable=SC2086
openssl req $ec -subj "/O=Example/CN=alice" -keyout tls/alice.key -out tls/alice.csr 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' > tls/client.ext
openssl x509 -req -in tls/alice.csr -CA tls/clients-ca.crt -CAkey tls/clients-ca.key -CAcreateserial \
	-days 90 -extfile tls/client.ext -out tls/alice.crt 2>/dev/null
rm -f tls/alice.csr tls/client.ext tls/clients-ca.srl
chmod 644 tls/site.crt tls/clients-ca.crt tls/alice.crt
echo "made tls/site.crt, tls/clients-ca.crt and tls/alice.crt ($(openssl x509 -in tls/alice.crt -noout -subject))"
