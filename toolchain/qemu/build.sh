#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
#
# Build QEMU's x86_64 system emulator with only the nitro-enclave machine, plus the qboot
# firmware that machine boots through, and install them into OUT so they run on the host.
#
#   toolchain/qemu/build.sh BUILDER OUT
#
# BUILDER is a Debian trixie root (toolchain/builder/packages.txt: deb-src lines, dpkg-dev,
# libcbor-dev, libgnutls28-dev, libfdt-dev, glib, pixman, meson, ninja). The source is
# trixie's `apt-get source qemu`; our patches (toolchain/qemu/*.patch, in name order) are
# applied on top. specs/qemu-nsm.md describes the patches and the command line to use.
#
# OUT layout:
#   bin/qemu-system-x86_64      sh wrapper: runs the real binary with the shipped loader
#   libexec/qemu-system-x86_64  the binary (trixie glibc)
#   lib/                        its shared-library closure and trixie's ld-linux-x86-64.so.2
#   share/qemu/qboot.rom        firmware of the microvm machine when ACPI is off (always, here)
#   VERSION                     "QEMU emulator version ..." and the Debian source version
#
# Environment: NB_QEMU_JOBS (default 2) parallel jobs; NB_QEMU_KEEP=1 keeps the build tree
# in BUILDER/build/qemu (for patch development: `ninja -C .../src/build` rebuilds).
set -eu

say() { echo "[qemu] $*"; }
die() { echo "[qemu] error: $*" >&2; exit 1; }

[ "$#" -eq 2 ] || { echo "usage: toolchain/qemu/build.sh BUILDER OUT" >&2; exit 2; }
builder=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
jobs=${NB_QEMU_JOBS:-2}
[ -x "$builder/usr/bin/apt-get" ] || die "$builder is not a builder tree (no usr/bin/apt-get)"
mkdir -p "$out"
out=$(cd "$out" && pwd)

work=$builder/build/qemu
rm -rf "$work"
mkdir -p "$work/patches"
for p in "$here"/*.patch; do
  if [ -e "$p" ]; then cp "$p" "$work/patches/"; fi
done

# Everything below runs chrooted in the builder; paths are the builder's.
cat >"$work/build-in-builder.sh" <<'EOF'
set -eu
say() { echo "[qemu] $*"; }
cd /build/qemu
say "apt-get update"
apt-get update -q >apt.log 2>&1 || { tail -5 apt.log >&2; exit 1; }
say "fetching trixie's qemu source"
apt-get source -q --download-only qemu >>apt.log 2>&1 || { tail -5 apt.log >&2; exit 1; }
dpkg-source -x qemu_*.dsc src >>apt.log 2>&1 || { tail -5 apt.log >&2; exit 1; }
cd src
for p in /build/qemu/patches/*.patch; do
  [ -e "$p" ] || continue
  say "applying $(basename "$p")"
  patch -p1 --forward --quiet <"$p" || { echo "[qemu] error: $(basename "$p") does not apply" >&2; exit 1; }
done
# Only the nitro-enclave machine (it selects microvm, virtio-nsm, vhost-user-vsock, EIF).
echo 'CONFIG_NITRO_ENCLAVE=y' >configs/devices/x86_64-softmmu/nitro.mak
say "configuring"
./configure --target-list=x86_64-softmmu \
  --without-default-devices --with-devices-x86_64=nitro \
  --without-default-features \
  --enable-kvm --enable-tcg --enable-libcbor --enable-gnutls --enable-fdt=system \
  --enable-vhost-user \
  --disable-install-blobs --disable-docs --disable-tools --disable-werror \
  --disable-debug-info --audio-drv-list= >configure.log 2>&1 \
  || { tail -20 configure.log >&2; echo "[qemu] error: configure failed" >&2; exit 1; }
grep -q '^CONFIG_NITRO_ENCLAVE=y' build/x86_64-softmmu-config-devices.mak \
  || { echo "[qemu] error: CONFIG_NITRO_ENCLAVE is not enabled" >&2; exit 1; }
say "building qemu-system-x86_64 (-j$JOBS, several minutes)"
ninja -C build -j"$JOBS" qemu-system-x86_64 >ninja.log 2>&1 \
  || { grep -m5 -B2 -A8 'error' ninja.log >&2; echo "[qemu] error: build failed" >&2; exit 1; }
say "building qboot (the microvm firmware)"
meson setup roms/qboot build-qboot >qboot.log 2>&1 && ninja -C build-qboot >>qboot.log 2>&1 \
  || { tail -20 qboot.log >&2; echo "[qemu] error: qboot build failed" >&2; exit 1; }

# Stage: the binary, its library closure and the loader.
st=/build/qemu/stage
mkdir -p $st/bin $st/libexec $st/lib $st/share/qemu
cp build/qemu-system-x86_64 $st/libexec/
strip $st/libexec/qemu-system-x86_64
cp build-qboot/bios.bin $st/share/qemu/qboot.rom
ldd build/qemu-system-x86_64 | awk '/=> \//{print $3} /^\t\/.*ld-linux/{print $1}' | while read -r lib; do
  cp -L "$lib" $st/lib/
done
[ -e $st/lib/ld-linux-x86-64.so.2 ] || { echo "[qemu] error: no dynamic loader in ldd output" >&2; exit 1; }
{
  $st/lib/ld-linux-x86-64.so.2 --library-path $st/lib $st/libexec/qemu-system-x86_64 --version | head -1
  echo "debian-source $(dpkg-parsechangelog -S Version)"
  for p in /build/qemu/patches/*.patch; do
    if [ -e "$p" ]; then echo "patch $(basename "$p")"; fi
  done
} >$st/VERSION
EOF

say "building in $builder (log files in $work while it runs)"
JOBS=$jobs "$here/../in-builder.sh" "$builder" /usr/bin/env JOBS="$jobs" sh /build/qemu/build-in-builder.sh

st=$work/stage
cp -a "$st/libexec" "$st/lib" "$st/share" "$st/VERSION" "$out/"
mkdir -p "$out/bin"
# The wrapper finds its directory at run time so OUT can move.
cat >"$out/bin/qemu-system-x86_64" <<'EOF'
#!/bin/sh
# Runs QEMU (built in a Debian trixie tree) with its own loader and libraries, so the host's
# older glibc does not matter. Generated by toolchain/qemu/build.sh.
d=$(cd "$(dirname "$0")/.." && pwd)
exec "$d/lib/ld-linux-x86-64.so.2" --library-path "$d/lib" "$d/libexec/qemu-system-x86_64" \
  -L "$d/share/qemu" "$@"
EOF
chmod 755 "$out/bin/qemu-system-x86_64"
"$out/bin/qemu-system-x86_64" --version >/dev/null || die "the installed qemu does not run on this host"
if [ "${NB_QEMU_KEEP:-0}" != 1 ]; then
  rm -rf "$work"
fi
say "done: $(head -1 "$out/VERSION")"
