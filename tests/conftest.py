# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Fixtures shared by every test package: paths, AWS environment, moto's server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from local_stack.processes import LOCAL_CREDENTIALS, ServerProcess, start_moto

REPO = Path(__file__).resolve().parent.parent
VECTORS = REPO / "tests" / "vectors"
AWS_VECTORS = VECTORS / "aws"  # copies of ../shared/vectors, provenance in its README


@pytest.fixture
def aws_vector():
    """Return the path of a real AWS vector file, asserting it exists."""

    def _get(relative: str) -> Path:
        path = AWS_VECTORS / relative
        assert path.is_file(), f"missing vector {path}"
        return path

    return _get


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Point boto3's standard credential chain at local-only credentials."""
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_KMS",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name, value in LOCAL_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return dict(LOCAL_CREDENTIALS)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[ServerProcess]:
    """Moto's server as a separate process on 127.0.0.1, for the whole session."""
    server = start_moto()
    try:
        yield server
    finally:
        server.stop()
