#!/bin/sh
# Prepare podman on a Debian host where no container registry is reachable (see docs/operations.md):
# install podman, runc and debootstrap, lift the ulimit default that some hosts refuse, and build
# debian:bookworm-slim from Debian's mirror under the name the Containerfile's FROM uses.
# Idempotent: each step is skipped when already done. Needs root (apt-get, debootstrap).
set -eu

# (the dnsname CNI plugin lets compose services find each other by name on podman's default CNI backend)
if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null \
   || { [ -d /usr/lib/cni ] && [ ! -x /usr/lib/cni/dnsname ]; }; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends podman runc debootstrap \
    golang-github-containernetworking-plugin-dnsname
fi
if [ ! -f /etc/containers/containers.conf ]; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\n' > /etc/containers/containers.conf
fi
if ! podman image exists docker.io/library/debian:bookworm-slim; then
  rootfs=$(mktemp -d /var/tmp/bookworm-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" >/dev/null
  tar -C "$rootfs" -c . | podman import - localhost/bookworm-minbase >/dev/null
  podman tag localhost/bookworm-minbase docker.io/library/debian:bookworm-slim
fi
podman run --rm --runtime runc --network host docker.io/library/debian:bookworm-slim true
echo "podman ready: debian:bookworm-slim present"
