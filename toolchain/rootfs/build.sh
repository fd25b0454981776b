#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
#
# Build the enclave's rootfs (specs/toolchain.md §6): a Debian trixie `essential` tree with
# python3, libfuse3 and CA certificates; the server's own venv at /opt/nitro-bundles/venv
# (server-requirements.txt only); and one app environment per --app file, a venv at
# /opt/nitro-bundles/app/<env-id> (env-id: the first 16 hex of the file's SHA-256) holding
# exactly that file's pins, with the file itself kept beside as requirements.txt. No Docker.
#
#   toolchain/rootfs/build.sh OUT [--app REQUIREMENTS]... [--deb PACKAGE]... [--wheels DIR]
#
# OUT must be empty or absent. --deb adds Debian packages (native libraries) to the tree;
# --wheels installs from a directory of already downloaded (and hash-checked) wheels instead
# of the index. Every requirements file is installed with --require-hashes --only-binary.
# The result is `owner-tools build-eif --rootfs OUT`.
set -eu
usage() {
  echo "usage: rootfs/build.sh OUT [--app REQUIREMENTS]... [--deb PACKAGE]... [--wheels DIR]" >&2
  exit 2
}
[ "$#" -ge 1 ] || usage
out=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
toolchain=$(dirname "$here")
apps=""
debs=""
wheels=""
while [ "$#" -gt 0 ]; do
  case $1 in
    --app) [ "$#" -ge 2 ] || usage; apps="$apps $2"; shift 2 ;;
    --deb) [ "$#" -ge 2 ] || usage; debs="$debs,$2"; shift 2 ;;
    --wheels) [ "$#" -ge 2 ] || usage; wheels=$2; shift 2 ;;
    *) usage ;;
  esac
done
venv=/opt/nitro-bundles/venv
appbase=/opt/nitro-bundles/app
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Fixed dates in what dpkg and mmdebstrap write (shadow, logs) keep the tree reproducible.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1704067200}

fail() {
  echo "[rootfs] error: $*" >&2
  exit 1
}
command -v mmdebstrap >/dev/null || fail "mmdebstrap is missing (apt-get install mmdebstrap)"
[ -f "$here/server-requirements.txt" ] || fail "no requirements file $here/server-requirements.txt"
for req in $apps; do
  [ -f "$req" ] || fail "no requirements file $req"
done
[ -z "$wheels" ] || [ -d "$wheels" ] || fail "no wheel directory $wheels"

echo "[rootfs] mmdebstrap trixie (essential + python3, libfuse3, libstdc++, ca-certificates$debs)"
bootstrap() {
  mmdebstrap --quiet --variant=essential --components=main \
    --include="python3,python3-venv,ca-certificates,libfuse3-4,libstdc++6$debs" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    trixie "$out" "deb $mirror trixie main"
}
# One retry from an empty tree: a download cut short (seen as dpkg-deb failing to read an
# archive of the tree's apt cache) should not fail a build whose inputs are fine. A package
# that does not exist fails both attempts.
if ! bootstrap; then
  echo "[rootfs] mmdebstrap failed; retrying once from an empty tree" >&2
  rm -rf "$out"
  bootstrap || fail "mmdebstrap could not build trixie with the Debian packages python3,python3-venv,ca-certificates,libfuse3-4,libstdc++6$debs"
fi

mkdir -p "$out/tmp/requirements"
# pip inside the tree trusts what the host trusts (a proxy's CA on a build machine, say) and
# uses the host's index when PIP_INDEX_URL says so; neither stays in the image.
pipopts=""
ca=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
if [ -f "$ca" ]; then
  cp "$ca" "$out/tmp/requirements/host-ca.crt"
  pipopts="--cert /tmp/requirements/host-ca.crt"
fi
if [ -n "$wheels" ]; then
  mkdir -p "$out/tmp/requirements/wheels"
  cp "$wheels"/*.whl "$out/tmp/requirements/wheels/" 2>/dev/null || true
  pipopts="$pipopts --no-index --find-links /tmp/requirements/wheels"
elif [ -n "${PIP_INDEX_URL:-}" ]; then
  pipopts="$pipopts --index-url $PIP_INDEX_URL"
fi

# One environment: a venv at $1 with exactly the pins of requirements file $2, checked
# (pip check, every top-level module imports), then without pip.
make_env() {
  env=$1
  req=$2
  what=$3
  echo "[rootfs] $what: venv at $env, pip install -r $(basename "$req")"
  "$toolchain/in-builder.sh" "$out" /usr/bin/python3 -m venv "$env"
  cp "$req" "$out/tmp/requirements/current.txt"
  log="$out/tmp/requirements/pip.log"
  if ! "$toolchain/in-builder.sh" "$out" "$env/bin/python3" -m pip install --quiet \
    --no-cache-dir --disable-pip-version-check --no-input \
    --require-hashes --no-deps --no-compile --only-binary=:all: $pipopts \
    -r /tmp/requirements/current.txt > "$log" 2>&1; then
    cat "$log" >&2
    fail "$what: $req: pip could not install it: $(pip_reason "$log")"
  fi
  "$toolchain/in-builder.sh" "$out" "$env/bin/python3" -m pip check > "$log" 2>&1 \
    || fail "$what: $req does not resolve: $(grep -m1 . "$log")"
  # Import every installed top-level module: a wheel that needs a Debian library the tree
  # lacks (libstdc++ for numpy, say), or one too old for this Python, fails here, not in
  # the enclave; the last line names the module and the error.
  if ! "$toolchain/in-builder.sh" "$out" "$env/bin/python3" -B -c '
import importlib, pkgutil, sys, traceback
site = [p for p in sys.path if p.endswith("site-packages")]
names = sorted(m.name for m in pkgutil.iter_modules(site) if not m.name.startswith("_"))
names = [n for n in names if n not in {"pip", "setuptools", "pkg_resources"}]
for name in names:
    try:
        importlib.import_module(name)
    except BaseException as exc:
        traceback.print_exc()
        why = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        sys.exit(f"module {name} does not import: {why}")
print("[rootfs] imported", len(names), "modules:", " ".join(names))
' > "$log" 2>&1; then
    cat "$log" >&2
    fail "$what: $(tail -n1 "$log") (a Debian library missing? add --deb)"
  fi
  cat "$log"
  "$toolchain/in-builder.sh" "$out" "$env/bin/python3" -m pip uninstall --quiet -y pip
}

# The first line of pip's failure that names what failed (a hash, a version, a pin).
pip_reason() {
  awk '
    /DO NOT MATCH THE HASHES/ { hashes = 1; next }
    hashes && /==|\.whl/ { sub(/^ +/, ""); print "hash mismatch: " $0; exit }
    /^ERROR: / { sub(/^ERROR: /, ""); print; exit }
  ' "$1" | cut -c1-300
}

# Byte-compile the stdlib and every environment (specs/toolchain.md §6 step 6): the image's
# tree is read-only and its env sets PYTHONDONTWRITEBYTECODE=1, so without these every
# interpreter of the enclave compiles all it imports on every start. unchecked-hash .pyc hold
# the source's hash, no mtime, and are never checked against the source (the tree cannot
# change: PCR2 measures it); the tree's own Python compiles them, at optimisation level 0
# (what the image runs), with a fixed hash seed so that no set constant's order varies; -B and
# -f: no timestamp .pyc of the compiler's own imports survives.
compile_tree() {
  dirs="/usr/lib/python3.13 /opt/nitro-bundles"
  [ ! -d "$out/usr/lib/python3/dist-packages" ] || dirs="$dirs /usr/lib/python3/dist-packages"
  echo "[rootfs] compiling $dirs (unchecked-hash .pyc)"
  log="$out/tmp/requirements/compile.log"
  # A file that does not compile (a template shipped as .py, say) stays source only: it
  # would fail to import anyway, which the import check above would have shown if it mattered.
  if ! "$toolchain/in-builder.sh" "$out" /usr/bin/env PYTHONHASHSEED=0 /usr/bin/python3 -B \
    -m compileall -q -f -j 2 --invalidation-mode unchecked-hash $dirs > "$log" 2>&1; then
    echo "[rootfs] warning: $(grep -c '^\*\*\* Error compiling' "$log") file(s) do not compile, kept as source only:"
    grep '^\*\*\* Error compiling' "$log" | head -n 20
  fi
  echo "[rootfs] $(find "$out" -xdev -name '*.pyc' | wc -l) .pyc files"
}

make_env "$venv" "$here/server-requirements.txt" "server"
for req in $apps; do
  id=$(sha256sum "$req" | cut -c1-16)
  [ ! -e "$out$appbase/$id" ] || continue  # the same file twice: one environment
  make_env "$appbase/$id" "$req" "app $id"
  # The file itself records the environment: build-eif hashes it into enclave.json.
  cp "$req" "$out$appbase/$id/requirements.txt"
  chmod 0644 "$out$appbase/$id/requirements.txt"
done

echo "[rootfs] dropping the venv packages and time-dependent files"
"$toolchain/in-builder.sh" "$out" dpkg --purge python3-venv python3.13-venv \
  python3-pip-whl python3-setuptools-whl >/dev/null
# The image's `python3` (first on the image's PATH) is the server venv's interpreter. A
# wrapper, not a symlink: Python finds pyvenv.cfg only next to the path it was started by.
# Entrypoints get their app environment's interpreter first on their PATH (the runner).
mkdir -p "$out/usr/local/bin"
printf '#!/bin/sh\nexec %s/bin/python3 "$@"\n' "$venv" > "$out/usr/local/bin/python3"
chmod 0755 "$out/usr/local/bin/python3"

# dpkg's byte-compiled files record source mtimes (which `build-eif --build-time` rewrites, so
# they would never be used): all go, and the tree's Python is compiled afresh below.
find "$out" -xdev -name __pycache__ -type d -prune -exec rm -rf {} +
compile_tree

rm -rf "$out/tmp/requirements" "$out/root/.cache" "$out/etc/resolv.conf"
rm -rf "$out/var/lib/apt/lists/"* "$out/var/cache/apt/"* "$out/var/cache/debconf/"*-old \
  "$out/var/lib/dpkg/"*-old "$out/var/cache/ldconfig/aux-cache" "$out/var/log/"*
[ ! -f "$out/etc/machine-id" ] || : > "$out/etc/machine-id"
chown -R 0:0 "$out"
echo "[rootfs] done: $(du -sh --apparent-size "$out" | cut -f1) in $(find "$out" | wc -l) entries"
