#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
#
# Build the enclave kernel for QEMU's nitro-enclave machine (specs/toolchain.md §4):
# linux-source-6.12 from the builder tree, `make tinyconfig`, our fragment merged over it,
# `make olddefconfig`, every fragment option checked, `make bzImage`.
#
#   toolchain/kernel/build.sh BUILDER OUT     -> OUT/bzImage, OUT/bzImage.config, OUT/VERSION
#
# JOBS (default 2) sets make's parallelism. Fixed build user, host, time and path keep the
# image reproducible.
set -eu
if [ "$#" -ne 2 ]; then
  echo "usage: kernel/build.sh BUILDER OUT" >&2
  exit 2
fi
builder=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
toolchain=$(dirname "$here")
jobs=${JOBS:-2}
tarball=$builder/usr/src/linux-source-6.12.tar.xz
work=$builder/build/kernel

fail() {
  echo "[kernel] error: $*" >&2
  exit 1
}

[ -f "$tarball" ] || fail "no $tarball in the builder tree (package linux-source-6.12)"
rm -rf "$work"
mkdir -p "$work" "$out"
echo "[kernel] unpacking linux-source-6.12"
"$toolchain/in-builder.sh" "$builder" \
  tar -xJf /usr/src/linux-source-6.12.tar.xz -C /build/kernel --strip-components=1
cp "$here/nitro-enclave.config" "$here/check_config.py" "$work/"

kmake="make -C /build/kernel ARCH=x86_64 KBUILD_BUILD_USER=nitro-bundles KBUILD_BUILD_HOST=toolchain"
kmake="$kmake KBUILD_BUILD_TIMESTAMP=2024-01-01T00:00:00Z KBUILD_BUILD_VERSION=1"
echo "[kernel] configuring: tinyconfig + nitro-enclave.config"
"$toolchain/in-builder.sh" "$builder" sh -c "
  set -e
  $kmake -s tinyconfig
  cd /build/kernel && scripts/kconfig/merge_config.sh -m -O /build/kernel .config nitro-enclave.config
  $kmake -s olddefconfig
"
"$toolchain/in-builder.sh" "$builder" python3 /build/kernel/check_config.py \
  /build/kernel/nitro-enclave.config /build/kernel/.config \
  || fail "the merged .config lacks options of nitro-enclave.config (see above)"

echo "[kernel] compiling bzImage with -j$jobs"
"$toolchain/in-builder.sh" "$builder" sh -c "$kmake -j$jobs bzImage"
cp "$work/arch/x86/boot/bzImage" "$out/bzImage"
cp "$work/.config" "$out/bzImage.config"
"$toolchain/in-builder.sh" "$builder" sh -c "$kmake -s kernelrelease" > "$out/VERSION"
rm -rf "$work"
echo "[kernel] done: $(cat "$out/VERSION"), bzImage $(wc -c < "$out/bzImage") bytes"
