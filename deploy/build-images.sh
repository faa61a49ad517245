#!/usr/bin/env bash
# Builds the bpg and kubesim images.
#
#   deploy/build-images.sh [--tag TAG] [--base IMAGE] [--bpg-binary PATH --kubesim-binary PATH]
#
# Without binaries it builds them (cargo build --release). Without --base it makes a local base
# image from the binaries' shared libraries (deploy/local-base.sh), since no registry may be
# reachable; with --base debian:bookworm-slim (or a distroless image) it uses that instead.
# Produces bpg:TAG and kubesim:TAG (TAG defaults to "local").
set -euo pipefail
cd "$(dirname "$0")/.."
tag=local base="" bpg="" kubesim=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag=$2; shift 2 ;;
    --base) base=$2; shift 2 ;;
    --bpg-binary) bpg=$2; shift 2 ;;
    --kubesim-binary) kubesim=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -z "$bpg" ] || [ -z "$kubesim" ]; then
  cargo build --release --bin bpg --bin kubesim
  bpg=target/release/bpg kubesim=target/release/kubesim
fi
if [ -z "$base" ]; then
  base=$(deploy/local-base.sh "bpg-local-base:$tag" "$bpg" "$kubesim")
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$bpg" "$ctx/bpg"
cp "$kubesim" "$ctx/kubesim"
cp -r deploy/image "$ctx/image"
for image in bpg kubesim; do
  dockerfile=deploy/Dockerfile
  [ "$image" = kubesim ] && dockerfile=deploy/kubesim.Dockerfile
  if ! docker build -q --build-arg BASE="$base" -f "$dockerfile" -t "$image:$tag" "$ctx" >"$ctx/build.log" 2>&1; then
    cat "$ctx/build.log" >&2
    exit 1
  fi
done
echo "built bpg:$tag and kubesim:$tag on $base"
