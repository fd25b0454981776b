# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The front's config file and process entry point."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

from local_stack.errors import InputError
from local_stack.kms_front import FrontConfig, KmsFront


def test_config_round_trips():
    config = FrontConfig(
        moto_url="http://127.0.0.1:1",
        root_pem=b"-----BEGIN CERTIFICATE-----\n",
        principals={"ak": "arn:aws:iam::123456789012:role/x"},
        max_age=timedelta(seconds=90),
    )
    assert FrontConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    "data",
    [{}, {"moto_url": "http://x", "root_pem": "p", "principals": {"a": 1}}],
    ids=["empty", "bad-principals"],
)
def test_bad_config_is_input_error(data):
    with pytest.raises(InputError):
        FrontConfig.from_json(data)


def test_non_http_moto_url_rejected():
    with pytest.raises(InputError):
        KmsFront(FrontConfig(moto_url="file:///etc", root_pem=b""))


def test_server_process_bad_config_one_line_no_traceback(tmp_path):
    config = tmp_path / "kms-front.json"
    config.write_text("{broken")
    result = subprocess.run(
        [sys.executable, "-m", "local_stack.kms_server", "--config", str(config), "--port", "1"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("local-kms-front: error: ")
