"""The layers' boundaries, read from the sources: the generic layers know no
document kind (each kind is a record the app hands to the registry:
collab/document/kind.py), and the store imports nothing of the rooms."""

from __future__ import annotations

import ast
from pathlib import Path

COLLAB = Path(__file__).resolve().parents[1] / "collab"
KIND_PACKAGES = ("collab.skeleton", "collab.segmentation")
KIND_NAMES = {"skeleton", "segmentation"}

#: Modules that serve every kind alike.
GENERIC = [
    *sorted((COLLAB / "sync").glob("*.py")),
    *sorted((COLLAB / "store").glob("*.py")),
    *sorted((COLLAB / "document").glob("*.py")),
    COLLAB / "history.py",
    COLLAB / "http" / "annotations.py",
    COLLAB / "http" / "sync_socket.py",
    COLLAB / "http" / "replay_socket.py",
]


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports (``from a.b import c`` counts as ``a.b``
    and ``a.b.c``), at any depth (also inside functions and TYPE_CHECKING)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _literals(path: Path) -> list[tuple[int, str]]:
    """String constants that are not docstrings, with their lines."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_generic_layers_import_no_document_kind() -> None:
    wrong = [
        f"{path.relative_to(COLLAB.parent)} imports {name}"
        for path in GENERIC
        for name in _imports(path)
        if any(_within(name, package) for package in KIND_PACKAGES)
    ]
    assert not wrong, "\n".join(wrong)


def test_generic_layers_name_no_document_kind() -> None:
    wrong = [
        f"{path.relative_to(COLLAB.parent)}:{line} names {value!r}"
        for path in GENERIC
        for line, value in _literals(path)
        if value in KIND_NAMES
    ]
    assert not wrong, "\n".join(wrong)


def test_the_store_imports_nothing_of_the_rooms() -> None:
    wrong = [
        f"{path.relative_to(COLLAB.parent)} imports {name}"
        for path in sorted((COLLAB / "store").glob("*.py"))
        for name in _imports(path)
        if _within(name, "collab.sync")
    ]
    assert not wrong, "\n".join(wrong)


def test_documents_sit_below_rooms_store_and_endpoints() -> None:
    above = ("collab.sync", "collab.store", "collab.http", "collab.app", "collab.history")
    wrong = [
        f"{path.relative_to(COLLAB.parent)} imports {name}"
        for path in sorted((COLLAB / "document").glob("*.py"))
        for name in _imports(path)
        if any(_within(name, package) for package in above)
    ]
    assert not wrong, "\n".join(wrong)


def test_the_app_hands_every_kind_to_the_registry() -> None:
    from collab.app import KINDS
    from collab.segmentation.kind import SEGMENTATION
    from collab.skeleton.kind import SKELETON

    assert KINDS == (SKELETON, SEGMENTATION)
    assert {kind.name for kind in KINDS} == KIND_NAMES
