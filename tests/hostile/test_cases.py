"""The case builder itself, on well-known types so that no service is needed: the same
seed sends the same bytes from any process, and the wire-level cases are what they say."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import api_pb2, struct_pb2
from google.protobuf.message import DecodeError

from tests.hostile.cases import build_cases

ROOT = Path(__file__).resolve().parents[2]
NOW_SECONDS = 1_767_225_600
# Api has nested lists and enums, Struct a map of messages (whose order upb varies).
DIGEST_OF_CASES = """
import hashlib, sys
from google.protobuf import api_pb2, struct_pb2
from tests.hostile.cases import build_cases
digest = hashlib.sha256()
for descriptor in (api_pb2.Api.DESCRIPTOR, struct_pb2.Struct.DESCRIPTOR):
    for case in build_cases(descriptor, 7, int(sys.argv[1])):
        digest.update(case.label.encode() + case.payload + case.summary.encode())
print(digest.hexdigest())
"""


def digest_in_a_new_process(hash_seed: str) -> str:
    environment = {**os.environ, "PYTHONHASHSEED": hash_seed}
    finished = subprocess.run(
        [sys.executable, "-c", DIGEST_OF_CASES, str(NOW_SECONDS)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return finished.stdout


def test_the_same_seed_sends_the_same_bytes_from_every_process() -> None:
    assert digest_in_a_new_process("1") == digest_in_a_new_process("2")


def test_invalid_utf8_cases_are_refused_by_a_proto3_parser() -> None:
    invalid = [
        case
        for case in build_cases(api_pb2.Api.DESCRIPTOR, 7, NOW_SECONDS)
        if "invalid UTF-8" in case.label
    ]
    assert invalid
    for case in invalid:
        with pytest.raises(DecodeError):
            api_pb2.Api.FromString(case.payload)


def test_huge_cases_stay_far_below_the_transport_limits() -> None:
    for descriptor in (api_pb2.Api.DESCRIPTOR, struct_pb2.Struct.DESCRIPTOR):
        sizes = [len(case.payload) for case in build_cases(descriptor, 7, NOW_SECONDS)]
        assert max(sizes) < 4 * 1024 * 1024
