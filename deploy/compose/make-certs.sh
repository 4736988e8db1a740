#!/usr/bin/env bash
# Makes the TLS material the compose cluster uses, into ./certs (or the directory given):
#   ca.pem, ca-key.pem            a private CA (keep ca-key.pem off the servers)
#   nats-server.pem/-key.pem      the NATS servers' certificate (clients and routes), for
#                                 nats-1, nats-2, nats-3, localhost and 127.0.0.1
#   coordinator.pem/-key.pem      the coordinator's gRPC certificate, for coordinator and localhost
# NATS_SANS / COORDINATOR_SANS override the names (deploy/k8s/make-secrets.sh sets Kubernetes ones).
# Needs openssl. Existing files are kept: delete the directory to make new ones.
set -euo pipefail
out="${1:-$(dirname "$0")/certs}"
days="${DELIFT_CERT_DAYS:-825}"
mkdir -p "$out"
cd "$out"

if [ ! -f ca.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca-key.pem -out ca.pem -days "$days" \
    -subj "/CN=delift private CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

issue() { # name, subject CN, subjectAltName
  local name="$1" cn="$2" san="$3"
  [ -f "$name.pem" ] && return 0
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$name-key.pem" -out "$name.csr" -subj "/CN=$cn" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' "$san" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out "$name.pem" -days "$days" -extfile "$name.ext" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

issue nats-server "nats" "${NATS_SANS:-DNS:nats-1,DNS:nats-2,DNS:nats-3,DNS:localhost,IP:127.0.0.1}"
issue coordinator "coordinator" "${COORDINATOR_SANS:-DNS:coordinator,DNS:localhost,IP:127.0.0.1}"
rm -f ca.srl
# The containers run as non-root users: the keys must be readable by them (compose file secrets
# are bind mounts that keep the host's modes). Keep this directory itself private.
chmod 0644 ./*.pem
chmod 0600 ca-key.pem
chmod 0700 .
echo "certificates in $out"
