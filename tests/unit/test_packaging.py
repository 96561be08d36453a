"""The wheel holds every package of the tree: pyproject's package list is complete.

setuptools installs only the packages ``[tool.setuptools] packages`` names; an
editable install hides an omission (the source tree is on the path), the image's
``pip install .`` does not. So every folder with an ``__init__.py`` under the
mapped roots must be listed under its dotted name.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _setuptools() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        config: dict[str, object] = tomllib.load(file)["tool"]["setuptools"]
    return config


def _packages_in_tree(package_dir: dict[str, str]) -> set[str]:
    found: set[str] = set()
    for name, folder in package_dir.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join((name, *relative.parts)))
    return found


def test_every_package_folder_is_in_the_wheel() -> None:
    config = _setuptools()
    package_dir = config["package-dir"]
    assert isinstance(package_dir, dict)
    listed = set(config["packages"])  # type: ignore[call-overload]
    missing = _packages_in_tree(package_dir) - listed
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
