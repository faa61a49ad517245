#!/usr/bin/env bash
# Makes a base image without pulling anything: a root filesystem holding only the shared
# libraries the given binaries link against, a CA bundle, /tmp, and a non-root user (65532),
# imported with `docker import`.
#
#   deploy/local-base.sh TAG BINARY...
set -euo pipefail
tag=$1
shift
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
for bin in "$@"; do
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
done
mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot"
chmod 1777 "$root/tmp"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
fi
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
tar -C "$root" -c . | docker import - "$tag" >/dev/null
echo "$tag"
