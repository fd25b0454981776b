# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Data bundles in a run: checks, key release, read-only mounts, output terms.

specs/threat-model.md §5.7. The runner calls, in this order:

1. `check_app_kind` on the `-f` bundle (a data bundle cannot be run);
2. `open_data_run` before any KMS call: every `--data` bundle is opened with the signers the
   app's `[[data]]` lists, and refused unless both sides' signed rules allow the pairing, it
   is within its validity window and not below the image's minimum version, given once, and
   the app's required data is all there (every refusal before the app's or any data key);
3. `DataRun.extract` after the app's key: each data key through attestation (the runner's own
   `KeyRelease`, so one attestation path serves all), each bundle decrypted (streamed) into
   its own private directory, which the run's view binds read-only at its mount;
4. `DataRun.sink`, `check_stream`, `check_files`: the strictest output terms of all bundles;
   a breach stops the run and releases nothing past the limit (`OutputTermsExceededError`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Self

from enclave.errors import EnclaveError
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
from enclave.runner.errors import (
    BundleExpiredRunError,
    BundleInvalidError,
    BundleNotYetValidRunError,
    BundleRollbackError,
    DataAppNotListedError,
    DataDuplicateError,
    DataMissingError,
    DataNotAllowedError,
    DataSignerNotListedError,
    DataTooLargeError,
    DataVersionOutOfRangeError,
    OutputTermsExceededError,
    RunSetupError,
    WrongBundleKindError,
)
from package_format.bundle.access import DataRule, semver_key
from package_format.bundle.errors import UntrustedSignerError
from package_format.errors import PackageFormatError

#: Most data bundles one run may join (each costs a KMS call and a mount).
MAX_DATA_BUNDLES = 32
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


@dataclass(frozen=True)
class DataPolicy:
    """What the runner's image and clock say about every bundle (as for the app)."""

    opener: BundleOpener
    now: datetime
    min_versions: Mapping[str, str]
    work_base: Path


def open_data_run(
    request: RunRequest, app: BundleFacts, session: SessionFiles, policy: DataPolicy
) -> DataRun:
    """Open and check every `--data` bundle of `request` (no KMS call; module doc, step 2).

    Raises:
        DataNotAllowedError: A rule of either side, a duplicate or a missing required bundle.
        WrongBundleKindError: An app given as `--data`.
        BundleInvalidError: A bundle does not open or verify.
        BundleValidityError, BundleRollbackError: Outside its window or below the minimum.
    """
    run = DataRun(app)
    try:
        _check_paths(request)
        for path in request.data:
            run.joined.append(_join(path, app, session, policy, run.streams))
        _check_names(run, app)
        _check_fits(run, app, policy.work_base)
    except BaseException:
        run.streams.close()
        raise
    return run


def _check_paths(request: RunRequest) -> None:
    if len(request.data) > MAX_DATA_BUNDLES:
        raise DataNotAllowedError(f"run: more than {MAX_DATA_BUNDLES} data bundles")
    seen = {request.bundle}
    for path in request.data:
        if path in seen:
            raise DataDuplicateError(f"{path}: given twice in one run (duplicate)")
        seen.add(path)


def _join(
    path: str,
    app: BundleFacts,
    session: SessionFiles,
    policy: DataPolicy,
    streams: contextlib.ExitStack,
) -> _Joined:
    rules = app.access.data
    trusted = tuple(dict.fromkeys(k for r in rules for k in r.signers))
    if not rules:
        raise DataNotAllowedError(f"{path}: app {app.name} accepts no data bundles ([[data]])")
    try:
        stream = streams.enter_context(session.open_file(path))
    except (OSError, EnclaveError) as exc:
        raise BundleInvalidError(f"{path}: cannot open the data bundle: {exc}") from exc
    try:
        opened = policy.opener(stream, trusted)
    except UntrustedSignerError as exc:
        raise DataSignerNotListedError(
            f"{path}: signer not listed by app {app.name}'s [[data]] ({exc})"
        ) from exc
    except PackageFormatError as exc:
        raise BundleInvalidError(f"{path}: {str(exc).removeprefix('bundle: ')}") from exc
    facts = opened.facts
    if facts.access.kind != "data":
        raise WrongBundleKindError(
            f"{path}: bundle {facts.name} is an {facts.access.kind} bundle, not data "
            "(give the app with -f)"
        )
    rule = _allow(path, app, facts)
    _check_window(path, facts, policy)
    return _Joined(path, opened, rule)


def _allow(path: str, app: BundleFacts, facts: BundleFacts) -> DataRule:
    """Both sides' rules: the app's `[[data]]` for this name, the data's `[[apps]]`."""
    subject = f"{path}: data {facts.name} {facts.version}"
    rule = next((r for r in app.access.data if r.name == facts.name), None)
    if rule is None:
        raise DataNotAllowedError(f"{subject}: app {app.name} lists no data named {facts.name}")
    if facts.access.signer not in rule.signers:
        raise DataSignerNotListedError(
            f"{subject}: signer not listed by app {app.name}'s [[data]] for {facts.name}"
        )
    if not rule.versions.admits(facts.version):
        raise DataVersionOutOfRangeError(
            f"{subject}: version outside app {app.name}'s range {rule.versions.text!r}"
        )
    if not any(g.admits(app.name, app.version, app.access.signer) for g in facts.access.apps):
        raise DataAppNotListedError(
            f"{subject}: its [[apps]] does not list app {app.name} {app.version} "
            "(name, signer and version range)"
        )
    return rule


def _check_window(path: str, facts: BundleFacts, policy: DataPolicy) -> None:
    subject = f"{path}: data {facts.name} {facts.version}"
    if facts.not_before is not None and policy.now < facts.not_before:
        raise BundleNotYetValidRunError(
            f"{subject}: not valid before {facts.not_before.isoformat()}"
        )
    if facts.expires is not None and policy.now >= facts.expires:
        raise BundleExpiredRunError(f"{subject}: expired at {facts.expires.isoformat()}")
    minimum = policy.min_versions.get(facts.name)
    if minimum is not None and semver_key(facts.version) < semver_key(minimum):
        raise BundleRollbackError(
            f"{subject}: older than the minimum version {minimum} pinned in the image "
            "(revoked or superseded)"
        )


def _check_names(run: DataRun, app: BundleFacts) -> None:
    names: set[str] = set()
    for item in run.joined:
        name = item.opened.facts.name
        if name in names:
            raise DataDuplicateError(f"{item.path}: data {name} is given twice (duplicate)")
        names.add(name)
    for rule in app.access.data:
        if rule.required and rule.name not in names:
            raise DataMissingError(
                f"app {app.name}: required data {rule.name} was not given (--data)"
            )


def _check_fits(run: DataRun, app: BundleFacts, work_base: Path) -> None:
    """Refuse before any KMS call when the plaintext cannot fit in the work base."""
    if not run.joined:
        return
    need = app.access.payload_size + sum(j.opened.facts.access.payload_size for j in run.joined)
    try:
        info = os.statvfs(work_base)
    except OSError:
        return
    free = info.f_bavail * info.f_frsize
    if need > free:
        biggest = max(run.joined, key=lambda j: j.opened.facts.access.payload_size)
        raise DataTooLargeError(
            f"{biggest.path}: the run's bundles need {need} bytes of plaintext, "
            f"the enclave has {free} free (larger than the enclave can hold)"
        )
