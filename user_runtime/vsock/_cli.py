# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The back-end's command line (specs/vsock.md §2.1); the only module that prints or exits."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType

from user_runtime.vsock.backend import BackendConfig, VsockBackend
from user_runtime.vsock.device_rx import HOST_CID
from user_runtime.vsock.errors import VsockError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m user_runtime.vsock",
        description="vhost-user vsock back-end: guest port P -> PREFIX_P, host CONNECT on PREFIX",
    )
    parser.add_argument("--socket", required=True, help="vhost-user socket QEMU connects to")
    parser.add_argument("--uds-path", required=True, help="host socket PREFIX")
    parser.add_argument("--guest-cid", type=int, default=16, help="the guest's CID (16)")
    parser.add_argument(
        "--host-cid", type=int, default=HOST_CID, help="CID of host-initiated packets (3)"
    )
    parser.add_argument("--log", help="append the log to this file instead of stderr")
    parser.add_argument("--verbose", action="store_true", help="log every connection")
    return parser


def entry(argv: list[str] | None = None) -> None:
    """Parse arguments, serve, exit 0 on a clean end, 1 on failure, 2 on usage errors."""
    args = _parser().parse_args(argv)
    handler: logging.Handler = (
        logging.FileHandler(args.log) if args.log else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter("%(asctime)s vsock %(levelname)s %(message)s"))
    root = logging.getLogger("user_runtime.vsock")
    root.addHandler(handler)
    root.setLevel(logging.INFO if args.verbose else logging.WARNING)
    config = BackendConfig(args.socket, args.uds_path, args.guest_cid, args.host_cid)
    try:
        backend = VsockBackend(config)
    except VsockError as error:
        print(f"vsock: {error}", file=sys.stderr)
        sys.exit(1)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        backend.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        backend.serve()
    except VsockError as error:
        print(f"vsock: {error}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
