# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Data bundles in a run: checks, key release, read-only mounts, output terms.

specs/threat-model.md §5.7. The runner calls, in this order:

1. `check_app_kind` on the `-f` bundle (a data bundle cannot be run);
2. `open_data_run` (`enclave.runner.data_checks`) before any KMS call: every `--data` bundle
   is opened with the signers the app's `[[data]]` lists, and refused unless both sides'
   signed rules allow the pairing, it is within its validity window and not below the
   image's minimum version, given once, and the app's required data is all there (every
   refusal before the app's or any data key);
3. `DataRun.extract` after the app's key: each data key through attestation (the runner's own
   `KeyRelease`, so one attestation path serves all), each bundle decrypted (streamed) into
   its own private directory, which the run's view binds read-only at its mount;
4. `DataRun.sink`, `check_stream`, `check_files`: the strictest output terms of all bundles;
   a breach stops the run and releases nothing past the limit (`OutputTermsExceededError`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Self

from enclave.runner.api import (
    BundleFacts,
    BundleRef,
    OpenedBundle,
    OutputTerms,
    RunResult,
    RunSink,
)
from enclave.runner.errors import (
    BundleInvalidError,
    OutputTermsExceededError,
    RunSetupError,
    WrongBundleKindError,
)
from package_format.bundle.access import DataRule
from package_format.errors import PackageFormatError

#: The runner's `key_while_preparing(opened, dest, get_key, name) -> key`.
KeyWhilePreparing = Callable[[OpenedBundle, Path, Callable[[], bytes], str], bytes]


def check_app_kind(facts: BundleFacts, path: str) -> None:
    """Refuse a data bundle given as the app (`-f`).

    Raises:
        WrongBundleKindError: The bundle's signed kind is not `app`.
    """
    if facts.access.kind != "app":
        raise WrongBundleKindError(
            f"{path}: bundle {facts.name} is a {facts.access.kind} bundle, not an app "
            "(give it with --data)"
        )


@dataclass
class _Joined:
    path: str
    opened: OpenedBundle
    rule: DataRule
    mount_src: Path | None = None


@dataclass
class DataRun:
    """The data bundles of one run, verified and allowed; a context manager (streams)."""

    app: BundleFacts
    joined: list[_Joined] = field(default_factory=list)
    streams: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    released: int = 0
    exceeded: bool = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.streams.close()

    # -- terms ---------------------------------------------------------------------------

    def terms(self) -> OutputTerms | None:
        """The strictest terms of the app and every data bundle (None: no data bundle)."""
        if not self.joined:
            return None
        stdout, stderr = self.app.allow_stdout, self.app.allow_stderr
        limit: int | None = None
        paths: set[str] | None = None
        for item in self.joined:
            terms = item.opened.facts.access.terms
            if terms is None:
                continue
            stdout, stderr = stdout and terms.stdout, stderr and terms.stderr
            if terms.max_output_bytes is not None:
                limit = (
                    terms.max_output_bytes if limit is None else min(limit, terms.max_output_bytes)
                )
            if terms.output_paths is not None:
                mine = set(terms.output_paths)
                paths = mine if paths is None else paths & mine
        return OutputTerms(limit, stdout, stderr, None if paths is None else tuple(sorted(paths)))

    def effective(self, facts: BundleFacts) -> BundleFacts:
        """The app's facts with stdout/stderr as the strictest terms allow."""
        terms = self.terms()
        if terms is None:
            return facts
        return replace(facts, allow_stdout=terms.stdout, allow_stderr=terms.stderr)

    def sink(self, sink: RunSink, stop: Callable[[], None]) -> RunSink:
        """`sink`, counting released bytes against the byte limit; `stop` kills the run."""
        terms = self.terms()
        if terms is None or terms.max_output_bytes is None:
            return sink
        return _LimitedSink(self, sink, terms.max_output_bytes, stop)

    def check_stream(self) -> None:
        """After the entrypoint ended: fail the run if its streams broke the byte limit.

        Raises:
            OutputTermsExceededError: The limit was reached (the run was stopped there).
        """
        if self.exceeded:
            raise OutputTermsExceededError(self._breach("stdout and stderr"))

    def check_files(self, out: Path) -> None:
        """Before /output/ is copied back: its paths and bytes within the terms.

        Raises:
            OutputTermsExceededError: A path the terms do not allow, or too many bytes.
        """
        terms = self.terms()
        if terms is None:
            return
        total = self.released
        for path in sorted(out.rglob("*")):
            if not path.is_file() or path.is_symlink():
                continue
            rel = path.relative_to(out).as_posix()
            allowed = terms.output_paths
            if allowed is not None and not any(fnmatch.fnmatchcase(rel, p) for p in allowed):
                raise OutputTermsExceededError(self._breach(f"output path {rel!r}"))
            total += path.stat().st_size
        if terms.max_output_bytes is not None and total > terms.max_output_bytes:
            raise OutputTermsExceededError(self._breach(f"{total} bytes of output"))

    def _breach(self, what: str) -> str:
        names = ", ".join(
            f"{j.opened.facts.name} {j.opened.facts.version}"
            for j in self.joined
            if j.opened.facts.access.terms is not None
        )
        return f"output terms exceeded: {what} not allowed by the terms of {names}; run stopped"

    # -- keys, files, record -------------------------------------------------------------

    def extract(
        self,
        work: Path,
        get_key: Callable[[BundleFacts], bytes],
        while_preparing: KeyWhilePreparing | None = None,
    ) -> None:
        """Release each data key, decrypt each bundle into its own private directory.

        `while_preparing` (the runner's `key_while_preparing`) lays out a bundle's pre-sized
        files and maps its ciphertext in while its key release runs, as for the app.

        Raises:
            KeyReleaseError: KMS denied a key (its bundle named).
            BundleInvalidError: A payload is damaged or the key is not its key.
            RunSetupError: The files do not fit.
        """
        for item in self.joined:
            facts = item.opened.facts
            dest = work / f"data-{secrets.token_hex(8)}"
            dest.mkdir(mode=0o700)
            if while_preparing is None:
                key = get_key(facts)
            else:
                key = while_preparing(item.opened, dest, partial(get_key, facts), facts.name)
            try:
                item.opened.extract(key, dest)
            except PackageFormatError as exc:
                raise BundleInvalidError(f"{item.path}: {exc}") from exc
            except OSError as exc:
                raise RunSetupError(
                    f"{item.path}: data {facts.name} does not fit in the enclave's memory: "
                    f"{exc.strerror or exc}"
                ) from exc
            item.mount_src = dest

    def mounts(self) -> list[list[str]]:
        """`[[source, mount], ...]` for the run's view (enclave.runner.view)."""
        return [[str(j.mount_src), j.rule.mount] for j in self.joined if j.mount_src is not None]

    def decorate(self, result: RunResult) -> RunResult:
        """`result` with the bundles the run used (app first) and the terms it enforced."""
        refs = [_ref("app", self.app, "")]
        refs += [_ref("data", j.opened.facts, j.rule.mount) for j in self.joined]
        return replace(result, bundles=tuple(refs), terms=self.terms())


def _ref(role: str, facts: BundleFacts, mount: str) -> BundleRef:
    return BundleRef(
        role=role,
        name=facts.name,
        version=facts.version,
        digest=facts.header_digest,
        manifest_digest=facts.access.manifest_digest,
        signer=facts.access.signer,
        mount=mount,
    )


@dataclass
class _LimitedSink:
    run: DataRun
    inner: RunSink
    limit: int
    stop: Callable[[], None]

    def _forward(self, data: bytes, send: Callable[[bytes], None]) -> None:
        room = self.limit - self.run.released
        if len(data) > room:
            self.run.exceeded = True
            data = data[: max(room, 0)]
            self.stop()
        if data:
            self.run.released += len(data)
            send(data)

    def stdout(self, data: bytes) -> None:
        if not self.run.exceeded:
            self._forward(data, self.inner.stdout)

    def stderr(self, data: bytes) -> None:
        if not self.run.exceeded:
            self._forward(data, self.inner.stderr)
