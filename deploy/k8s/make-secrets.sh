#!/usr/bin/env bash
# Writes what kustomization.yaml's secretGenerator reads into deploy/k8s/secrets/: two NATS
# passwords, the gRPC token, a private CA, the NATS servers' and the coordinator's certificates
# (names as the NATS chart and the Services in namespace "delift" give them). Needs openssl.
# Existing files are kept. With cert-manager, create the TLS Secrets from it instead.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/secrets}"
ns="${DELIFT_NAMESPACE:-delift}"
mkdir -p "$out"
chmod 0700 "$out"
for name in nats-coordinator-password nats-worker-password token; do
  [ -f "$out/$name" ] || (umask 077 && openssl rand -hex 24 | tr -d '\n' > "$out/$name")
done
NATS_SANS="DNS:nats,DNS:nats.$ns,DNS:nats.$ns.svc,DNS:nats.$ns.svc.cluster.local,DNS:*.nats-headless,DNS:*.nats-headless.$ns.svc,DNS:*.nats-headless.$ns.svc.cluster.local,DNS:localhost,IP:127.0.0.1" \
COORDINATOR_SANS="DNS:delift-coordinator,DNS:delift-coordinator.$ns.svc,DNS:delift-coordinator.$ns.svc.cluster.local,DNS:localhost,IP:127.0.0.1" \
  "$here/../compose/make-certs.sh" "$out"
