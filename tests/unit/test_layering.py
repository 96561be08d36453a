"""The layering rule, checked on the source: shared/ stands below the services, and
services never import each other; only the composition root (app/) sees them all.

Every ``import`` and ``from ... import`` anywhere in a module counts, inside
functions and ``TYPE_CHECKING`` blocks too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("ingress", "filter", "delivery", "audit")
ABOVE_SHARED = (*SERVICES, "app")


def imported(path: Path) -> set[str]:
    """Every module name ``path`` imports (absolute imports only: the tree uses no others)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def offending(folder: Path, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*.py")):
        for name in sorted(imported(path)):
            parts = name.split(".")
            if len(parts) > 1 and parts[0] == "postline" and parts[1] in forbidden:
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


def test_imported_finds_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from postline.audit.index import Index\n"
        "def f():\n    import postline.delivery.mx\n"
    )
    assert {"postline.audit.index", "postline.delivery.mx"} <= imported(module)


def test_shared_imports_no_service_and_not_the_composition_root() -> None:
    assert offending(ROOT / "shared", ABOVE_SHARED) == []


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service_and_not_the_composition_root(service: str) -> None:
    others = tuple(name for name in ABOVE_SHARED if name != service)
    assert offending(ROOT / "services" / service, others) == []
