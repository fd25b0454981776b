# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The run's record and receipt, built around a run of the runner (specs/receipts.md §3-§5).

`ReceiptIssuer` wraps what the runner is given, so the runner itself does not change:

- the bundle opener, to learn the app bundle's verified facts (name, version, manifest
  digest, signer) when the runner opens it;
- the sink, to hash the stdout and stderr bytes released to the user;
- the session files, to take each input's digest in the same lock as its bytes are copied
  into the run's view (`SessionFs.export_tree`), from the running hashes kept as files
  arrived (`enclave.stream_digest`), never by reading them again.

When the run has ended with an exit status, `finish` takes the outputs' digests (their
running hashes, as the runner wrote them back), encodes the record, asks the NSM for a
document with `user_data` = SHA-384(record) and `nonce` = the user's nonce, and writes
`output/receipt.cbor`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from enclave.runner.errors import RunSetupError
from enclave.sessionfs import SessionFs, SessionFsError, StatInfo
from package_format.receipt import (
    RECEIPT_FILE,
    FileDigest,
    RecordBundle,
    RecordTerms,
    RunRecord,
    encode_receipt,
)
from package_format.rpc.codes import ErrorCode

if TYPE_CHECKING:
    from enclave.nsm.interface import Nsm
    from enclave.runner.api import (
        BundleFacts,
        BundleOpener,
        BundleRef,
        OpenedBundle,
        OutputTerms,
        RunRequest,
        RunResult,
        RunSink,
        SessionFiles,
    )

#: nonce, user_data -> a COSE_Sign1 attestation document from the NSM.
Attest = Callable[[bytes | None, bytes], bytes]
RECEIPT_PATH = f"output/{RECEIPT_FILE}"
_NO_KEY = bytes(32)


def _identity(info: StatInfo) -> tuple[int, int, int]:
    """What changes whenever a session file's bytes do: its size and times."""
    return info.size, info.mtime_ns, info.ctime_ns


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class ReceiptIssuer:
    """Issues a receipt for each run of one runner (one run at a time)."""

    def __init__(
        self, fs: SessionFs, attest: Attest, clock_ms: Callable[[], int] = _now_ms
    ) -> None:
        self._fs = fs
        self._attest = attest
        self._clock_ms = clock_ms
        self._current: PendingRecord | None = None

    def opener(self, inner: BundleOpener) -> BundleOpener:
        """Wrap the runner's opener: the first bundle a run opens is its app (§3.2)."""

        def open_and_note(stream: IO[bytes], trusted_keys: Sequence[bytes]) -> OpenedBundle:
            opened = inner(stream, trusted_keys)
            current = self._current
            if current is not None and current.facts is None:
                current.facts = opened.facts
            return opened

        return open_and_note

    def begin(self, request: RunRequest, sink: RunSink, session: SessionFiles) -> PendingRecord:
        """Start the record of `request`: pass the returned sink and session to the runner.

        The bundle's digest is taken when the run has ended (`_bundle_digest`), so its hash
        (behind the writer, §4.1.1) goes on while the run decrypts and runs; what is noted
        now is which bytes the run starts from.
        """
        try:
            seen = _identity(self._fs.stat(request.bundle))
        except SessionFsError:
            seen = None  # the runner refuses the run itself (no such bundle)
        pending = PendingRecord(self, request, sink, session, seen, self._clock_ms())
        self._current = pending
        return pending

    def _seal(self, pending: PendingRecord, result: RunResult) -> RunResult:
        self._current = None
        if result.cancelled or pending.facts is None or pending.bundle_seen is None:
            return result
        record = pending.record(result, self._clock_ms())
        encoded = record.encode()
        try:
            document = self._attest(record.nonce, hashlib.sha384(encoded).digest())
        except Exception as exc:
            raise RunSetupError(f"receipt: the nsm gave no attestation document: {exc}") from exc
        receipt = encode_receipt(encoded, bytes(document))
        try:
            self._fs.create(RECEIPT_PATH, 0o644, truncate=True)
            self._fs.write(RECEIPT_PATH, 0, receipt)
        except SessionFsError as exc:
            raise RunSetupError(f"receipt: cannot write {RECEIPT_PATH}: {exc}") from exc
        outputs = tuple(p for p in result.outputs if p != RECEIPT_PATH)
        return dataclasses.replace(result, outputs=(*outputs, RECEIPT_PATH), receipt=receipt)

    def _bundle_digest(self, path: str, seen: tuple[int, int, int]) -> bytes:
        """SHA-256 of the bundle file, which must be the one the run started from (§3.2.1)."""
        try:
            digest, _ = self._fs.file_digest(path)
            now = _identity(self._fs.stat(path))
        except SessionFsError as exc:
            raise RunSetupError(f"receipt: {path}: {exc}") from exc
        if now != seen:
            raise RunSetupError(f"receipt: {path} changed in the session during the run")
        return digest

    def abandon(self, pending: PendingRecord) -> None:
        """The run raised: no receipt."""
        if self._current is pending:
            self._current = None


class PendingRecord:
    """One run's record while it runs; `sink` and `session` go to the runner."""

    def __init__(  # noqa: PLR0917 - the run's parts
        self,
        issuer: ReceiptIssuer,
        request: RunRequest,
        sink: RunSink,
        session: SessionFiles,
        bundle_seen: tuple[int, int, int] | None,
        started: int,
    ) -> None:
        self._issuer = issuer
        self.request = request
        self.bundle_seen = bundle_seen
        self.started = started
        self.facts: BundleFacts | None = None
        self.sink = _HashingSink(sink)
        self.session = _RecordingSession(session, issuer._fs)  # noqa: SLF001 - same module

    def finish(self, result: RunResult) -> RunResult:
        """The run returned: write and attach its receipt (none for a cancelled run).

        Raises:
            RunSetupError: The NSM or the session refused (the run then fails closed).
        """
        return self._issuer._seal(self, result)  # noqa: SLF001 - same module

    def abandon(self) -> None:
        """The run raised: forget it."""
        self._issuer.abandon(self)

    def _bundles(self, result: RunResult) -> tuple[RecordBundle, ...]:
        # The runner names the app and its data bundles in request order (issue 22); their
        # digest here is the whole file's SHA-256 as the session took it in (§3.2), the value
        # the signed index lists, so a receipt matches what the user pulled.
        assert self.facts is not None
        assert self.bundle_seen is not None
        app_digest = self._issuer._bundle_digest(self.request.bundle, self.bundle_seen)  # noqa: SLF001
        if not result.bundles:
            return (_app(self.facts, app_digest),)
        paths = (self.request.bundle, *self.request.data)
        if len(paths) != len(result.bundles):
            raise RunSetupError("receipt: the run's bundles do not match its request")
        refs = []
        for path, ref in zip(paths, result.bundles, strict=True):
            digest = app_digest if path == self.request.bundle else None
            if digest is None:
                digest, _ = self._issuer._fs.file_digest(path)  # noqa: SLF001 - same module
            refs.append(dataclasses.replace(_ref(ref), digest=digest))
        return tuple(refs)

    def record(self, result: RunResult, ended: int) -> RunRecord:
        """The run's record (specs/receipts.md §3.2)."""
        assert self.facts is not None
        request = self.request
        bundles = self._bundles(result)
        outputs = []
        for path in result.outputs:
            if path != RECEIPT_PATH:
                digest, size = self._issuer._fs.file_digest(path)  # noqa: SLF001
                outputs.append(FileDigest(path, digest, size))
        inputs = [FileDigest(p, d, s) for p, (d, s) in self.session.digests.items()]
        return RunRecord(
            bundles=bundles,
            entrypoint=request.entrypoint,
            args=request.args,
            env=tuple(f"{name}={value}" for name, value in request.env),
            nonce=request.nonce,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            stdout=self.sink.stdout_hash.digest(),
            stderr=self.sink.stderr_hash.digest(),
            exit_status=result.exit_status,
            started=self.started,
            ended=ended,
            terms=None if result.terms is None else _terms(result.terms),
        )


def _app(facts: BundleFacts, digest: bytes) -> RecordBundle:
    return RecordBundle(
        role="app",
        name=facts.name,
        version=facts.version,
        digest=digest,
        manifest_digest=facts.manifest_digest or _NO_KEY,
        signer=facts.signer or _NO_KEY,
    )


def _ref(ref: BundleRef) -> RecordBundle:
    return RecordBundle(
        ref.role, ref.name, ref.version, ref.digest, ref.manifest_digest, ref.signer, ref.mount
    )


def _terms(terms: OutputTerms) -> RecordTerms:
    return RecordTerms(terms.max_output_bytes, terms.stdout, terms.stderr, terms.output_paths)


class _HashingSink:
    """Hashes what reaches the user, then forwards it (specs/receipts.md §4.3)."""

    def __init__(self, inner: RunSink) -> None:
        self._inner = inner
        self.stdout_hash = hashlib.sha256()
        self.stderr_hash = hashlib.sha256()

    def stdout(self, data: bytes) -> None:
        self.stdout_hash.update(data)
        self._inner.stdout(data)

    def stderr(self, data: bytes) -> None:
        self.stderr_hash.update(data)
        self._inner.stderr(data)


class _RecordingSession:
    """The runner's session files, taking each exported input's digest (§4.1)."""

    def __init__(self, inner: SessionFiles, fs: SessionFs) -> None:
        self._inner = inner
        self._fs = fs
        self.digests: dict[str, tuple[bytes, int]] = {}

    def open_file(self, path: str) -> IO[bytes]:
        return self._inner.open_file(path)

    def export_dir(self, name: str, dest: Path) -> None:
        try:
            self._fs.export_tree(name, dest, self.digests)
        except SessionFsError as exc:
            if exc.code is not ErrorCode.ENOENT:
                raise

    def clear_dir(self, name: str) -> None:
        self._inner.clear_dir(name)

    def import_dir(self, src: Path, name: str) -> list[str]:
        return self._inner.import_dir(src, name)


def issuer_from_nsm(fs: SessionFs, nsm: Nsm, environ: Mapping[str, str]) -> ReceiptIssuer | None:
    """The issuer of a server with this NSM; None when `NB_RECEIPTS=0` (benchmarks only)."""
    if environ.get("NB_RECEIPTS", "1") == "0":
        return None

    def attest(nonce: bytes | None, user_data: bytes) -> bytes:
        return bytes(nsm.attestation(user_data=user_data, nonce=nonce))

    return ReceiptIssuer(fs, attest)


__all__ = ["RECEIPT_PATH", "PendingRecord", "ReceiptIssuer", "issuer_from_nsm"]
