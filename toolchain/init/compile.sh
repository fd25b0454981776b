#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
#
# The one compile command for init (specs/enclave-image.md §13.7), used by build.sh inside the
# builder tree and by tests/toolchain/test_init.py with the host's gcc, so both check the
# same flags. Extra arguments go to gcc (the tests add -DNB_INIT_TEST).
#
#   compile.sh SRC OUT [GCC-ARG...]
set -eu
if [ "$#" -lt 2 ]; then
  echo "usage: compile.sh SRC OUT [GCC-ARG...]" >&2
  exit 2
fi
src=$1
out=$2
shift 2
"${CC:-gcc}" -std=c11 -static -Os -Wall -Wextra -Werror "$@" -o "$out" "$src"
"${STRIP:-strip}" --strip-all "$out"
