#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
#
# Run a command inside a builder tree (a Debian trixie root made by mmdebstrap), as root, in a
# private mount namespace: /dev, /proc and /sys are mounted for the command and vanish with it,
# so an interrupted build leaves nothing mounted on the host.
#
#   toolchain/in-builder.sh ROOT COMMAND [ARG...]
set -eu
if [ "$#" -lt 2 ]; then
  echo "usage: in-builder.sh ROOT COMMAND [ARG...]" >&2
  exit 2
fi
exec unshare --mount --propagation private sh -c '
  set -eu
  root=$1; shift
  mount --rbind /dev "$root/dev"
  mount -t proc proc "$root/proc"
  mount --rbind /sys "$root/sys"
  cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
' in-builder "$@"
