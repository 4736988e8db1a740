#!/usr/bin/env bash
# Points KEDA's ScaledObject at one delift job's tile stream and applies it:
#   deploy/k8s/keda/follow-job.sh "$(delift submit ... --detach)"
set -euo pipefail
job="${1:?usage: follow-job.sh JOB_ID}"
[[ "$job" =~ ^[A-Za-z0-9_-]+$ ]] || { echo "follow-job.sh: not a job id: $job" >&2; exit 2; }
sed "s/DELIFT_TILES_JOB_ID/DELIFT_TILES_$job/" "$(dirname "$0")/scaledobject.yaml" | kubectl apply -f -
