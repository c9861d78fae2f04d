"""kit/ is the glue every layer builds on: it must not import core/ or modules/ (an AST walk over
every import statement in src/kiban/kit, module level and inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import kiban.kit

KIT = Path(kiban.kit.__file__).resolve().parent
FORBIDDEN = ("kiban.core", "kiban.modules", "kiban.ops", "kiban.web")

#: Imports inside functions that look up a table of Japanese names or the identity dependencies on
#: first use (kit never loads core at import time). They are still dependencies on core; each must
#: go (core registering its labels/dependencies with kit at start-up) and then leave this list,
#: which the test keeps exact, so it can only shrink.
KNOWN_LAZY = {
    ("errors.py", "kiban.core.identity.permissions"),
    ("templating.py", "kiban.core.identity.permissions"),
    ("templating.py", "kiban.core.audit.labels"),
    ("openapi.py", "kiban.core.identity"),
    ("openapi.py", "kiban.core.identity.permissions"),
}


def _absolute(node: ast.ImportFrom, path: Path) -> str:
    if not node.level:
        return node.module or ""
    package = ["kiban", *path.relative_to(KIT.parent).parent.parts]
    base = package[:len(package) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports(path: Path, *, located: Path | None = None) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for each import in the file; relative imports resolved
    as if the file were at ``located`` (default: where it is)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, located or path)
            # `from kiban import core` imports the package kiban.core
            found += [(f"{module}.{alias.name}" if module == "kiban" else module, id(node) in top)
                      for alias in node.names]
    return found


def _forbidden(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


def test_kit_imports_nothing_from_core_or_modules() -> None:
    files = sorted(KIT.rglob("*.py"))
    assert len(files) > 10, files
    at_load, lazy = [], set()
    for path in files:
        name = str(path.relative_to(KIT))
        for module, top_level in _imports(path):
            if not _forbidden(module):
                continue
            if top_level:
                at_load.append((name, module))
            else:
                lazy.add((name, module))
    assert at_load == [], f"kit imports core/modules when it is loaded: {at_load}"
    assert lazy - KNOWN_LAZY == set(), f"new imports of core/modules inside kit functions: {lazy - KNOWN_LAZY}"
    assert KNOWN_LAZY - lazy == set(), f"gone, remove from KNOWN_LAZY: {KNOWN_LAZY - lazy}"


def test_the_walk_sees_relative_function_level_and_package_imports(tmp_path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from ..core import tenancy\nimport kiban.modules.disaster\nfrom kiban import core\n"
                     "from . import db\ndef f():\n    from kiban.core.audit import labels\n", encoding="utf-8")
    found = _imports(probe, located=KIT / "probe.py")
    assert found == [("kiban.core", True), ("kiban.modules.disaster", True), ("kiban.core", True),
                     ("kiban.kit", True), ("kiban.core.audit", False)]
    assert [_forbidden(m) for m, _ in found] == [True, True, True, False, True]
    assert not _forbidden("kiban.corelike")
