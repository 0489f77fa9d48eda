"""The y-protocol messages: strict parsing, round trips, golden bytes shared
with the JavaScript side (tests/golden/sync_messages.json)."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collab.errors import ProtocolError, UnknownMessageType
from collab.sync import messages as m

GOLDEN = json.loads((Path(__file__).parents[1] / "golden" / "sync_messages.json").read_text())


def test_golden_bytes() -> None:
    assert m.pack_sync_step1(b"\x00").hex() == GOLDEN["sync_step1_empty"]
    assert m.pack_update(m.EMPTY_UPDATE).hex() == GOLDEN["update_empty"]
    assert m.pack_saved(300).hex() == GOLDEN["saved_300"]
    assert m.pack_auth_denied("no").hex() == GOLDEN["auth_denied_no"]
    assert m.pack_query_awareness().hex() == GOLDEN["query_awareness"]
    entry = m.AwarenessEntry(7, 2, GOLDEN["awareness_client7_clock2_state"])
    assert (
        m.pack_awareness(m.pack_awareness_update([entry])).hex()
        == GOLDEN["awareness_client7_clock2"]
    )


def test_golden_bytes_match_lib0(node_modules: Path) -> None:
    js = Path(__file__).parents[1] / "js" / "golden.mjs"
    done = subprocess.run(["node", str(js)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_parse_golden_messages() -> None:
    assert m.parse(bytes.fromhex(GOLDEN["sync_step1_empty"])) == m.SyncMessage(
        m.SyncType.STEP1, b"\x00"
    )
    assert m.parse_saved(bytes.fromhex(GOLDEN["saved_300"])) == 300
    assert m.parse(bytes.fromhex(GOLDEN["auth_denied_no"])) == m.AuthMessage("no")
    assert isinstance(m.parse(b"\x03"), m.QueryAwarenessMessage)
    aw = m.parse(bytes.fromhex(GOLDEN["awareness_client7_clock2"]))
    assert isinstance(aw, m.AwarenessMessage)
    assert aw.entries == (m.AwarenessEntry(7, 2, '{"u":1}'),)


@given(st.binary(max_size=2000), st.sampled_from(list(m.SyncType)))
def test_sync_round_trip(payload: bytes, sub: m.SyncType) -> None:
    frame = {
        m.SyncType.STEP1: m.pack_sync_step1,
        m.SyncType.STEP2: m.pack_sync_step2,
        m.SyncType.UPDATE: m.pack_update,
    }[sub](payload)
    assert m.parse(frame) == m.SyncMessage(sub, payload)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**53 - 1),
            st.integers(0, 2**32),
            st.dictionaries(st.text(max_size=5), st.integers()) | st.none(),
        ),
        max_size=20,
    )
)
def test_awareness_round_trip(raw: list[tuple[int, int, dict[str, int] | None]]) -> None:
    entries = tuple(m.AwarenessEntry(c, k, json.dumps(s)) for c, k, s in raw)
    parsed = m.parse(m.pack_awareness(m.pack_awareness_update(entries)))
    assert isinstance(parsed, m.AwarenessMessage) and parsed.entries == entries


@given(st.integers(0, 2**53 - 1))
def test_saved_round_trip(version: int) -> None:
    assert m.parse_saved(m.pack_saved(version)) == version


@given(st.binary(max_size=64))
def test_parse_never_crashes_on_garbage(frame: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        m.parse(frame)


@pytest.mark.parametrize(
    "frame", [b"", b"\x00", b"\x00\x02", b"\x00\x02\x05ab", b"\x80", b"\xff" * 9]
)
def test_truncated_frames_raise_protocol_error(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        m.parse(frame)


def test_unknown_types() -> None:
    with pytest.raises(UnknownMessageType):
        m.parse(b"\x09")
    with pytest.raises(UnknownMessageType):
        m.parse(b"\x00\x07\x00")


def test_accepted_round_trip() -> None:
    assert m.pack_accepted(300) == bytes([0x65, 0xAC, 0x02])
    assert m.parse_accepted(m.pack_accepted(300)) == 300
    with pytest.raises(ProtocolError):
        m.parse_accepted(m.pack_saved(300))
