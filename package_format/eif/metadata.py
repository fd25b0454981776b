# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The EIF metadata section, `EifIdentityInfo` (specs/enclave-image.md §2.4).

Compact JSON with the top-level keys in serde's struct order and the keys of
nested objects (DockerInfo, CustomMetadata) sorted, as serde_json writes them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from package_format.eif.errors import EifSectionError
from package_format.limits import json_loads

MAX_CUSTOM_METADATA = 4096


@dataclass(frozen=True)
class BuildMetadata:
    """`BuildMetadata` inside the identity info."""

    build_time: str
    build_tool: str
    build_tool_version: str
    operating_system: str
    kernel_version: str


@dataclass(frozen=True)
class IdentityInfo:
    """`EifIdentityInfo`: name, version, build metadata, docker info, custom metadata."""

    image_name: str
    image_version: str
    build: BuildMetadata
    docker_info: Any = None
    custom_metadata: Any = None

    def to_bytes(self) -> bytes:
        """Serialize as nitro-cli does (compact, fixed top-level order, nested keys sorted)."""

        def enc(value: Any) -> str:
            return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)

        b = self.build
        text = (
            f'{{"ImageName":{enc(self.image_name)},"ImageVersion":{enc(self.image_version)},'
            f'"BuildMetadata":{{"BuildTime":{enc(b.build_time)},"BuildTool":{enc(b.build_tool)},'
            f'"BuildToolVersion":{enc(b.build_tool_version)},'
            f'"OperatingSystem":{enc(b.operating_system)},'
            f'"KernelVersion":{enc(b.kernel_version)}}},'
            f'"DockerInfo":{enc(self.docker_info)},"CustomMetadata":{enc(self.custom_metadata)}}}'
        )
        return text.encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> IdentityInfo:
        """Parse a metadata section.

        Raises:
            EifSectionError: not JSON, or a required field is missing or not a string.
        """
        try:
            obj = json_loads(data.decode())
            bm = obj["BuildMetadata"]
            fields = [
                obj["ImageName"],
                obj["ImageVersion"],
                bm["BuildTime"],
                bm["BuildTool"],
                bm["BuildToolVersion"],
                bm["OperatingSystem"],
                bm["KernelVersion"],
            ]
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            # ValueError covers JsonLimitError: too deep, or an integer too long.
            raise EifSectionError("eif metadata section: not valid identity info json") from exc
        if not all(isinstance(f, str) for f in fields):
            raise EifSectionError("eif metadata section: a required field is not a string")
        return cls(
            image_name=fields[0],
            image_version=fields[1],
            build=BuildMetadata(*fields[2:]),
            docker_info=obj.get("DockerInfo"),
            custom_metadata=obj.get("CustomMetadata"),
        )


def kernel_config_info(config_text: str) -> tuple[str, str]:
    """OperatingSystem and KernelVersion from a kernel `.config` (words 1 and 3 of line 3).

    Raises:
        EifSectionError: the config has fewer than 3 lines or line 3 too few words.
    """
    lines = config_text.splitlines()
    words = re.split(r"[ /-]", lines[2]) if len(lines) >= 3 else []
    if len(words) < 4:
        raise EifSectionError("kernel config: line 3 does not name the os and kernel version")
    return words[1], words[3]
