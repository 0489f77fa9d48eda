"""NML and zip uploads, fuzzed: real NMLs truncated, bit-flipped, spliced
with hostile pieces (DTDs with entity expansion, external entities, 100,000-
character attributes, nesting 5,000 deep, NULs, non-numbers, duplicate
ids), random bytes, and zips holding any of these under any name, damaged
zips and zip bombs (honest and lying about their size).

Invariant for every input: a 2xx or a 4xx JSON error (never a 5xx), the
server stays up, and a bystander's work is acknowledged afterwards. A zip
whose .nml inflates past ``COLLAB_MAX_BODY_BYTES`` is refused with 413
before it is inflated."""

from __future__ import annotations

import io
import struct
import warnings
import zipfile

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures import NML
from tests.fuzz.conftest import FUZZ, FUZZ_TIMEOUT, annotation, assert_still_saving, user
from tests.processes import ServerProcess

SEEDS = [path.read_bytes() for path in sorted(NML.glob("*.nml"))]

HOSTILE = [
    b'<?xml version="1.0" encoding="U-F-8"?>',  # found: an unknown encoding answered 500
    b'<!DOCTYPE things [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
    b'<things><comments><comment node="1" content="&d;"/></comments></things>',
    b'<!DOCTYPE things [<!ENTITY x SYSTEM "file:///etc/passwd">]><things>&x;</things>',
    b'<!DOCTYPE things SYSTEM "http://127.0.0.1:1/x.dtd"><things/>',
    b'<node id="1" x="' + b"9" * 100_000 + b'" y="1" z="1"/>',
    b"<group id='1' name='g'>" * 5000,
    b"\x00",
    b'<node id="1" x="nan" y="inf" z="-0"/>',
    b'<node id="1" x="1" y="1" z="1"/><node id="1" x="2" y="2" z="2"/>',
    b'<edge source="1" target="1"/><edge source="1" target="999999999999999999999"/>',
    b'<thing id="1,2" name="\xff\xfe"/>',
    b'<comment node="1" content="' + "\u0000\U0010ffff".encode("utf-8", "surrogatepass") + b'"/>',
    b"</things></things>",
]


@st.composite
def nml_bodies(draw: st.DrawFn) -> bytes:
    how = draw(st.sampled_from(["seed", "truncate", "flip", "splice", "random"]))
    if how == "random":
        return draw(st.binary(max_size=512))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    if how == "truncate":
        del data[draw(st.integers(0, len(data))) :]
    elif how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            k = draw(st.integers(0, len(data) - 1))
            data[k] = draw(st.integers(0, 255))
    elif how == "splice":
        piece = draw(st.one_of(st.sampled_from(HOSTILE), st.binary(max_size=64)))
        at = draw(st.integers(0, len(data)))
        data[at:at] = piece
    return bytes(data)


@st.composite
def zip_bodies(draw: st.DrawFn) -> bytes:
    buf = io.BytesIO()
    names = st.sampled_from(["a.nml", "A.NML", "dir/a.nml", "../a.nml", "/a.nml", "a.txt", "\u00e9.nml",
                             "data_Volume.zip", "a.nml\x00.txt", ""])  # fmt: skip
    with zipfile.ZipFile(
        buf, "w", draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    ) as z:
        for _ in range(draw(st.integers(0, 3))):
            with warnings.catch_warnings():  # duplicate names are one of the attacks
                warnings.simplefilter("ignore")
                z.writestr(draw(names) or "x", draw(nml_bodies()))
    data = bytearray(buf.getvalue())
    how = draw(st.sampled_from(["as is", "as is", "truncate", "flip", "lie"]))
    if how == "truncate" and data:
        del data[draw(st.integers(0, len(data) - 1)) :]
    elif how == "flip" and data:
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif how == "lie":  # every declared uncompressed size replaced
        size = draw(st.sampled_from([0, 1, 2**31, 2**32 - 1]))
        for sig, at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
            k = data.find(sig)
            while k >= 0 and k + at + 4 <= len(data):
                data[k + at : k + at + 4] = struct.pack("<I", size)
                k = data.find(sig, k + 4)
    return bytes(data)


uploads = st.one_of(
    nml_bodies().map(lambda b: ("application/xml", b)),
    zip_bodies().map(lambda b: ("application/zip", b)),
    st.tuples(st.sampled_from(["", "text/plain", "application/octet-stream"]), nml_bodies()),
)


#: Uploads merged into one annotation before the next go to a fresh one. An
#: accepted NML is merged into the annotation's skeleton, which then grows:
#: a 100,000-input run into one annotation slowed as it did (3,933 imports
#: merged after 40 minutes, far below the CI-size rate). A fresh annotation
#: every 500 inputs keeps what is measured the handling of each upload.
INPUTS_PER_ANNOTATION = 500


@pytest.mark.timeout(FUZZ_TIMEOUT)
def test_uploads(server: ServerProcess) -> None:
    _, token = user(server, "uploader")
    bystander = annotation(server, token)
    targets = [annotation(server, token)]
    statuses: dict[int, int] = {}
    inputs = 0
    with httpx.Client(headers=server.headers(token), timeout=60) as http:

        @FUZZ
        @given(uploads)
        def attack(upload: tuple[str, bytes]) -> None:
            nonlocal inputs
            inputs += 1
            if inputs % INPUTS_PER_ANNOTATION == 0:
                targets.append(annotation(server, token))
            url = f"{server.url}/api/annotations/{targets[-1]}/nml"
            kind, body = upload
            r = http.post(url, content=body, headers={"content-type": kind} if kind else {})
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            assert r.status_code < 500, (r.status_code, r.text[:300], body[:200])
            if r.status_code >= 400:
                assert "error" in r.json(), r.text[:300]

        attack()
    assert set(statuses) - {200, 400, 413, 415, 422} == set(), statuses
    assert statuses.get(200, 0) > 0 and statuses.get(422, 0) > 0, statuses  # both reached
    assert_still_saving(server, token, bystander)


def _bomb(inflated: int) -> bytes:
    """A zip whose one .nml inflates to ``inflated`` bytes of spaces inside <things>."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z, z.open("bomb.nml", "w") as f:
        f.write(b"<things>")
        chunk = b" " * (1 << 20)
        for _ in range((inflated - 17) // len(chunk)):
            f.write(chunk)
        f.write(b"</things>")
    return buf.getvalue()


@pytest.mark.timeout(300)
def test_zip_bombs(server: ServerProcess) -> None:
    _, token = user(server, "bomber")
    target = annotation(server, token)
    bystander = annotation(server, token)
    url = f"{server.url}/api/annotations/{target}/nml"
    headers = {"content-type": "application/zip"}
    limit = 256 * 1024 * 1024  # COLLAB_MAX_BODY_BYTES of the fuzz server (its default)
    bomb = _bomb(limit + (1 << 20))
    assert len(bomb) < limit // 200  # compressed ~1,000 : 1
    with httpx.Client(headers=server.headers(token), timeout=120) as http:
        r = http.post(url, content=bomb, headers=headers)
        assert r.status_code == 413 and "inflates to" in r.json()["error"]["message"], r.text
        # The same bomb lying about its size: inflating stops at the lie.
        liar = bytearray(bomb)
        for sig in (b"PK\x03\x04", b"PK\x01\x02"):
            k = liar.find(sig)
            at = 22 if sig == b"PK\x03\x04" else 24
            liar[k + at : k + at + 4] = struct.pack("<I", 1000)
        r = http.post(url, content=bytes(liar), headers=headers)
        assert r.status_code == 422, r.text
        # A harmless zip is still taken.
        ok = io.BytesIO()
        with zipfile.ZipFile(ok, "w") as z:
            z.writestr("a.nml", SEEDS[0])
        assert http.post(url, content=ok.getvalue(), headers=headers).status_code == 200
    assert server.alive()
    assert_still_saving(server, token, bystander)
