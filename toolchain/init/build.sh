#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
#
# Build the enclave's init (init.c, specs/enclave-image.md §13) as a static, stripped x86_64
# ELF with the builder tree's gcc and glibc: OUT/init. Same source and builder, same bytes.
#
#   toolchain/init/build.sh BUILDER OUT
set -eu
if [ "$#" -ne 2 ]; then
  echo "usage: build.sh BUILDER OUT" >&2
  exit 2
fi
builder=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -x "$builder/usr/bin/gcc" ] || [ ! -f "$builder/usr/lib/x86_64-linux-gnu/libc.a" ]; then
  echo "init: the builder tree $builder has no gcc or no static libc (libc6-dev)" >&2
  exit 1
fi
if [ ! -d "$out" ]; then
  echo "init: output directory $out does not exist" >&2
  exit 1
fi
work=$builder/build/init
trap 'rm -rf "$work"' EXIT
rm -rf "$work"
mkdir -p "$work"
cp "$here/init.c" "$here/compile.sh" "$work/"
echo "[init] compiling init.c (static, -Os) in the builder tree"
if ! "$here/../in-builder.sh" "$builder" sh /build/init/compile.sh /build/init/init.c /build/init/init; then
  echo "init: compiling init.c in the builder tree failed" >&2
  exit 1
fi
cp "$work/init" "$out/init"
chmod 0755 "$out/init"
echo "[init] $out/init: $(wc -c < "$out/init") bytes"
