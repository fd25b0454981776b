#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
#
# Build the enclave's base rootfs (specs/toolchain.md §6): a Debian trixie `essential` tree
# with python3, libfuse3 and CA certificates, and a venv at /opt/nitro-bundles/venv holding
# the server's (and for now the sample app's) third-party wheels, pinned by hash. No Docker.
#
#   toolchain/rootfs/build.sh OUT [REQUIREMENTS...]
#
# OUT must be empty or absent. REQUIREMENTS default to server-requirements.txt and
# app-requirements.txt next to this script. The result is `owner-tools build-eif --rootfs OUT`.
set -eu
if [ "$#" -lt 1 ]; then
  echo "usage: rootfs/build.sh OUT [REQUIREMENTS...]" >&2
  exit 2
fi
out=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
toolchain=$(dirname "$here")
if [ "$#" -eq 0 ]; then
  set -- "$here/server-requirements.txt" "$here/app-requirements.txt"
fi
venv=/opt/nitro-bundles/venv
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Fixed dates in what dpkg and mmdebstrap write (shadow, logs) keep the tree reproducible.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1704067200}

fail() {
  echo "[rootfs] error: $*" >&2
  exit 1
}
command -v mmdebstrap >/dev/null || fail "mmdebstrap is missing (apt-get install mmdebstrap)"
for req in "$@"; do
  [ -f "$req" ] || fail "no requirements file $req"
done

echo "[rootfs] mmdebstrap trixie (essential + python3, libfuse3, libstdc++, ca-certificates)"
mmdebstrap --quiet --variant=essential --components=main \
  --include=python3,python3-venv,ca-certificates,libfuse3-4,libstdc++6 \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  trixie "$out" "deb $mirror trixie main"

echo "[rootfs] venv at $venv"
"$toolchain/in-builder.sh" "$out" /usr/bin/python3 -m venv "$venv"
mkdir -p "$out/tmp/requirements"
# pip inside the tree trusts what the host trusts (a proxy's CA on a build machine, say) and
# uses the host's index when PIP_INDEX_URL says so; neither stays in the image.
pipopts=""
ca=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
if [ -f "$ca" ]; then
  cp "$ca" "$out/tmp/requirements/host-ca.crt"
  pipopts="--cert /tmp/requirements/host-ca.crt"
fi
if [ -n "${PIP_INDEX_URL:-}" ]; then
  pipopts="$pipopts --index-url $PIP_INDEX_URL"
fi
for req in "$@"; do
  name=$(basename "$req")
  cp "$req" "$out/tmp/requirements/$name"
  echo "[rootfs] pip install -r $name"
  "$toolchain/in-builder.sh" "$out" "$venv/bin/python3" -m pip install --quiet \
    --no-cache-dir --disable-pip-version-check --no-input \
    --require-hashes --no-deps --no-compile --only-binary=:all: $pipopts \
    -r "/tmp/requirements/$name"
done
"$toolchain/in-builder.sh" "$out" "$venv/bin/python3" -m pip check \
  || fail "the venv's packages do not satisfy each other's requirements"
# Import every installed top-level module: a wheel that needs a Debian library the tree
# lacks (libstdc++ for numpy, say) fails here, not in the enclave.
"$toolchain/in-builder.sh" "$out" "$venv/bin/python3" -B -c '
import importlib, pkgutil, sys
site = [p for p in sys.path if p.endswith("site-packages")]
names = sorted(m.name for m in pkgutil.iter_modules(site) if not m.name.startswith("_"))
for name in names:
    importlib.import_module(name)
print("[rootfs] imported", len(names), "modules:", " ".join(names))
' || fail "a module of the venv does not import (see above)"

echo "[rootfs] dropping pip, the venv packages and time-dependent files"
"$toolchain/in-builder.sh" "$out" "$venv/bin/python3" -m pip uninstall --quiet -y pip
"$toolchain/in-builder.sh" "$out" dpkg --purge python3-venv python3.13-venv \
  python3-pip-whl python3-setuptools-whl >/dev/null
# The image's `python3` (first on the image's PATH) is the venv's interpreter. A wrapper,
# not a symlink: Python finds pyvenv.cfg only next to the path it was started by.
mkdir -p "$out/usr/local/bin"
printf '#!/bin/sh\nexec %s/bin/python3 "$@"\n' "$venv" > "$out/usr/local/bin/python3"
chmod 0755 "$out/usr/local/bin/python3"

rm -rf "$out/tmp/requirements" "$out/root/.cache" "$out/etc/resolv.conf"
rm -rf "$out/var/lib/apt/lists/"* "$out/var/cache/apt/"* "$out/var/cache/debconf/"*-old \
  "$out/var/lib/dpkg/"*-old "$out/var/cache/ldconfig/aux-cache" "$out/var/log/"*
find "$out" -xdev -name __pycache__ -type d -prune -exec rm -rf {} +
[ ! -f "$out/etc/machine-id" ] || : > "$out/etc/machine-id"
chown -R 0:0 "$out"
echo "[rootfs] done: $(du -sh --apparent-size "$out" | cut -f1) in $(find "$out" | wc -l) entries"
