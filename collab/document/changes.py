"""Restore and selective revert, computed as changes to the *current* document.

A document rebuilt from plain content would duplicate everything on clients
that reconnect with their old state, so both operations write, inside one
transaction on the live document, only the entries that must change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pycrdt import Doc, Map

from collab.document.content import MISSING, Path, overlaps, plain, root_map, roots
from collab.document.kind import DocumentKind


def _same(a: Any, b: Any) -> bool:
    return plain(a) == plain(b)


def make_equal(current: Doc, target: Doc, kind: DocumentKind) -> None:
    """Change ``current`` (inside the caller's transaction) until it reads like ``target``."""
    names = set(roots(current, kind)) | set(roots(target, kind))
    for name in sorted(names):
        cur = root_map(current, name)
        tgt = root_map(target, name)
        for key in [k for k in cur.keys() if k not in tgt]:
            del cur[key]
        for key in tgt.keys():
            tv = tgt[key]
            cv = cur.get(key, MISSING)
            if isinstance(tv, Map):
                if isinstance(cv, Map):
                    _sync_fields(cv, tv.to_py() or {})
                else:
                    cur[key] = Map(tv.to_py() or {})
            elif cv is MISSING or isinstance(cv, Map) or not _same(cv, tv):
                cur[key] = tv


def _sync_fields(cur: Map, fields: dict[str, Any]) -> None:
    for k in [k for k in cur.keys() if k not in fields]:
        del cur[k]
    for k, v in fields.items():
        if k not in cur or not _same(cur[k], v):
            cur[k] = v


@dataclass
class RevertPlan:
    """What undoing one version does: entries put back, and entries kept because
    a later version changed them too (``kept[path] = that later version``)."""

    revert: dict[Path, Any] = field(default_factory=dict)  # path -> value to restore
    kept: dict[Path, int] = field(default_factory=dict)


def plan_revert(touched: dict[Path, tuple[Any, Any]], later: dict[Path, int]) -> RevertPlan:
    """``touched``: what the reverted version changed (old, new);
    ``later``: each path touched after it, with the first version that did."""
    plan = RevertPlan()
    later_sorted = sorted(later.items())
    for path, (old, _new) in sorted(touched.items()):
        hit = next((v for p, v in later_sorted if overlaps(p, path)), None)
        if hit is not None:
            plan.kept[path] = hit
        else:
            plan.revert[path] = old
    return plan


def apply_revert(doc: Doc, plan: RevertPlan, kind: DocumentKind) -> None:
    """Write the plan into ``doc`` (inside the caller's transaction)."""
    for path, old in sorted(plan.revert.items(), key=lambda item: len(item[0])):
        root = root_map(doc, path[0])
        if len(path) == 2:
            key = path[1]
            if old is MISSING:
                if key in root:
                    del root[key]
            elif isinstance(old, dict) and _is_nested(doc, path[0], kind):
                existing = root.get(key)
                if isinstance(existing, Map):
                    _sync_fields(existing, old)
                else:
                    root[key] = Map(old)
            else:
                root[key] = old
        elif len(path) == 3:
            parent = root.get(path[1])
            if not isinstance(parent, Map):
                continue  # the whole entry is gone; nothing to put a field into
            if old is MISSING:
                if path[2] in parent:
                    del parent[path[2]]
            else:
                parent[path[2]] = old


def _is_nested(doc: Doc, root: str, kind: DocumentKind) -> bool:
    """The root's entries are nested Y.Maps: the kind says so (its roots'
    ``nested``), or, for a root it does not declare, an entry is one."""
    if root in kind.nested_roots:
        return True
    return any(isinstance(v, Map) for v in root_map(doc, root).values())
