"""Resolution levels ("mags"): how many mag-1 voxels one voxel spans per axis.

A mag is written ``1``, ``2``, ``4`` when isotropic and ``2-2-1`` when not
(never ``2-2-2``), as WEBKNOSSOS names its mag folders.
"""

from __future__ import annotations

from typing import NamedTuple

from collab.errors import BadRequest

#: Coarsest factor accepted per axis (2^20 voxels of mag 1 per voxel).
MAX_FACTOR = 1 << 20


class Mag(NamedTuple):
    x: int
    y: int
    z: int

    def __str__(self) -> str:
        if self.x == self.y == self.z:
            return str(self.x)
        return f"{self.x}-{self.y}-{self.z}"

    @property
    def volume(self) -> int:
        return self.x * self.y * self.z


def _factor(text: str, original: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 7:
        raise BadRequest(f"mag {original!r}: factors are positive integers like 1, 2, 2-2-1")
    value = int(text)
    if value < 1 or value > MAX_FACTOR or value & (value - 1):
        raise BadRequest(f"mag {original!r}: each factor must be a power of two")
    return value


def parse_mag(text: str) -> Mag:
    """Parse ``"2"``, ``"2-2-1"`` (also ``"2,2,1"`` and ``"2x2x1"``)."""
    raw = text.strip()
    for sep in (",", "x"):
        raw = raw.replace(sep, "-")
    parts = raw.split("-")
    if len(parts) == 1:
        f = _factor(parts[0], text)
        return Mag(f, f, f)
    if len(parts) != 3:
        raise BadRequest(f"mag {text!r}: write one factor or three (x-y-z)")
    x, y, z = (_factor(p, text) for p in parts)
    return Mag(x, y, z)


def mag_of(values: object) -> Mag:
    """A mag from a JSON value: an integer or a list of three integers."""
    if isinstance(values, bool):
        raise BadRequest(f"mag {values!r} is not a mag")
    if isinstance(values, int):
        return parse_mag(str(values))
    if isinstance(values, str):
        return parse_mag(values)
    if isinstance(values, list | tuple) and len(values) == 3:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return parse_mag("-".join(str(v) for v in values))
        if all(isinstance(v, float) and v.is_integer() for v in values):
            return parse_mag("-".join(str(int(v)) for v in values))
    raise BadRequest(f"mag {values!r} is not a mag")
