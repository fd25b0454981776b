# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Serve the KMS front over HTTP on 127.0.0.1, as its own process.

Run as `python -m local_stack.kms_server --config FILE --port N` (what
`local-stack up` does). Logs one line per request on stderr.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

from local_stack.errors import LocalStackError
from local_stack.kms_front import FrontConfig, KmsFront, error_reply

if TYPE_CHECKING:
    from local_stack.kms_front import KmsReply

HOST = "127.0.0.1"


def make_server(front: KmsFront, max_body: int, port: int = 0) -> ThreadingHTTPServer:
    """Bind an HTTP server for `front` on 127.0.0.1:`port` (0: any free port)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "nitro-bundles-local-kms/1"

        def _serve(self) -> None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > max_body:
                self._send(error_reply("ValidationException", "request body too large or bad"))
                self.close_connection = True
                return
            body = self.rfile.read(length) if length else b""
            headers = dict(self.headers.items())
            try:
                reply = front.handle(self.command, self.path, headers, body)
            except Exception as exc:  # noqa: BLE001 - one bad request must not kill the server
                reply = error_reply("KMSInternalException", f"local kms front: {exc}", 500)
            self._send(reply)

        def _send(self, reply: KmsReply) -> None:
            self.send_response(reply.status)
            for key, value in reply.headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        do_POST = _serve  # noqa: N815 - http.server's naming
        do_GET = _serve  # noqa: N815
        do_PUT = _serve  # noqa: N815
        do_DELETE = _serve  # noqa: N815
        do_HEAD = _serve  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            sys.stderr.write(f"kms-front: {self.address_string()} {format % args}\n")

    server = ThreadingHTTPServer((HOST, port), Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    """Process entry point: read the config and serve until SIGTERM."""
    parser = argparse.ArgumentParser(prog="local-kms-front")
    parser.add_argument("--config", required=True, help="kms-front.json written by local-stack up")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        config = FrontConfig.from_json(json.loads(Path(args.config).read_text(encoding="utf-8")))
        front = KmsFront(config)
        server = make_server(front, config.max_body_bytes, args.port)
    except (LocalStackError, OSError, ValueError) as exc:
        print(f"local-kms-front: error: {exc}", file=sys.stderr)  # noqa: T201 - process entry
        return 1

    def _stop(signum: int, frame: object) -> None:
        del signum, frame
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
