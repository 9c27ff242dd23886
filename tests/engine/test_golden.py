"""The golden transcripts: the demo, the ELO 2015 set and the gallery loop, event for event."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
import record  # noqa: E402


@pytest.mark.parametrize("name", sorted(record.CASES))
def test_golden_transcript_unchanged(name: str) -> None:
    want = [json.loads(line) for line in record.golden_path(name).read_text().splitlines()]
    got = record.run_case(name)
    assert len(got) == len(want), f"{name}: {len(got)} events, golden has {len(want)}"
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"{name}: event {i} differs"
