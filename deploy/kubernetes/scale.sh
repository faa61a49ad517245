#!/usr/bin/env bash
# Scales the gateway StatefulSet and performs the Raft membership changes.
#
#   deploy/kubernetes/scale.sh REPLICAS [NAMESPACE]
#
# Up: new pods start, find they are not members and join (learner, then voter) by themselves.
# Down: the departing ordinals are first removed from the voters through the leader, so the
# cluster never counts dead voters toward its quorum; then the StatefulSet shrinks.
# Keep an odd number of voters (3, 5): 4 tolerates no more failures than 3.
set -euo pipefail
want=$1
ns=${2:-bpg}
have=$(kubectl -n "$ns" get statefulset bpg -o jsonpath='{.spec.replicas}')
if [ "$want" -lt 1 ]; then
  echo "at least one replica" >&2
  exit 2
fi
if [ "$want" -gt "$have" ]; then
  kubectl -n "$ns" scale statefulset bpg --replicas="$want"
  kubectl -n "$ns" rollout status statefulset bpg --timeout=10m
elif [ "$want" -lt "$have" ]; then
  for id in $(seq $((have - 1)) -1 "$want"); do
    kubectl -n "$ns" exec bpg-0 -- bpg admin --config /etc/bpg/bpg.yaml --node-id 0 remove-member "$id"
  done
  kubectl -n "$ns" scale statefulset bpg --replicas="$want"
fi
kubectl -n "$ns" exec bpg-0 -- bpg admin --config /etc/bpg/bpg.yaml --node-id 0 status
