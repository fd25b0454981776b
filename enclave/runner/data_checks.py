# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Data bundles before any KMS call: each opened and checked against both sides' rules.

specs/threat-model.md §5.7 step 2 (`enclave.runner.data_bundles`, step 2): every `--data`
bundle is opened with the signers the app's `[[data]]` lists, and refused unless both sides'
signed rules allow the pairing, it is within its validity window and not below the image's
minimum version, given once, and the app's required data is all there.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from enclave.errors import EnclaveError
from enclave.runner.api import BundleFacts, BundleOpener, RunRequest, SessionFiles
from enclave.runner.data_bundles import DataRun, _Joined
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
    WrongBundleKindError,
)
from package_format.bundle.access import DataRule, semver_key
from package_format.bundle.errors import UntrustedSignerError
from package_format.errors import PackageFormatError

#: Most data bundles one run may join (each costs a KMS call and a mount).
MAX_DATA_BUNDLES = 32


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
