"""Step cache keys: what must be unchanged for a previous execution to be reused.

A key covers the digest of the notebook's code cells (not outputs, markdown or
metadata), the step's merged parameters as written in the spec (references
unresolved: an upstream value is covered by that step's key), the digests of
its declared inputs, the keys of the steps it needs, and the environment
(Python and package versions).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import blake3

from ..capture import notebook_code_digest
from ..errors import InvalidInput
from ..hashing import StatCache, digest_path

KEY_VERSION = 1


def input_digests(root: Path, inputs: tuple[str, ...], cache: StatCache | None,
                  step: str) -> dict[str, str]:
    digests = {}
    for relative in inputs:
        path = root / relative
        if not path.exists():
            raise InvalidInput(f"step {step!r}: declared input {relative} does not exist")
        digests[relative] = digest_path(path, cache)
    return digests


def step_key(*, notebook: Path, params: Mapping[str, Any], inputs: Mapping[str, str],
             needs: Mapping[str, str], environment: str) -> str:
    payload = {
        "version": KEY_VERSION,
        "code": notebook_code_digest(notebook),
        "params": params,
        "inputs": dict(sorted(inputs.items())),
        "needs": dict(sorted(needs.items())),
        "environment": environment,
    }
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    return "blake3:" + blake3.blake3(encoded).hexdigest()
