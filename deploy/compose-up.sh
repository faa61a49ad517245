#!/usr/bin/env bash
# One command for a local bpg in containers: builds the binaries and images (no image is
# pulled), starts deploy/compose.yaml, waits for a leader, and prints the blog's SparkPi curl.
# `docker-compose -p bpg -f deploy/compose.yaml down -v` tears it all down.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/build-images.sh
docker-compose -p bpg -f deploy/compose.yaml up -d
for _ in $(seq 1 120); do
  if curl -fsS -u admin:admin localhost:8080/admin/raft 2>/dev/null | grep -q '"current_leader":[0-9]'; then
    break
  fi
  sleep 1
done
cat <<'MSG'
bpg is up: gateway APIs on localhost:8080, 8082 and 8084 (users user:pass, admin:admin).
Submit the blog's SparkPi job:

curl -u user:pass localhost:8080/skatev2/spark -i -X POST -H 'Content-Type: application/json' -d '{"applicationName": "SparkPiDemo", "queue": "dev", "sparkVersion": "3.5.0", "mainApplicationFile": "local:///usr/lib/spark/examples/jars/spark-examples.jar", "mainClass": "org.apache.spark.examples.SparkPi", "driver": {"cores": 1, "memory": "2g", "serviceAccount": "emr-containers-sa-spark", "labels": {"version": "3.5.0"}}, "executor": {"instances": 1, "cores": 1, "memory": "2g", "labels": {"version": "3.5.0"}}}'

Tear down: docker-compose -p bpg -f deploy/compose.yaml down -v
MSG
