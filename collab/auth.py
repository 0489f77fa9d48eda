"""Tokens, principals and per-annotation access. Pure: the queries are in store/identity.py.

A token is ``clb_`` + 43 URL-safe characters (256 random bits). Only its
SHA-256 is stored; a 256-bit random secret needs no slow KDF. The row is found
by its hash through a unique index and the digest is compared again with
:func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import IntEnum

TOKEN_PREFIX = "clb_"
MAX_TOKEN_LENGTH = 256


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def same_hash(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def plausible(token: str | None) -> bool:
    return bool(token) and len(token or "") <= MAX_TOKEN_LENGTH and (token or "").isascii()


class Access(IntEnum):
    NONE = 0
    READ = 1
    WRITE = 2
    OWNER = 3


ROLE_ACCESS = {"viewer": Access.READ, "editor": Access.WRITE, "owner": Access.OWNER}
ROLES = ("admin", "manager", "annotator", "reviewer")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user, or the holder of a sharing link for one annotation."""

    token_id: int
    user_id: int | None
    roles: frozenset[str]
    link_annotation: int | None = None
    link_access: Access = Access.NONE

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles and self.link_annotation is None

    @property
    def is_link(self) -> bool:
        return self.link_annotation is not None
