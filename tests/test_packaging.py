"""Packaging invariants that need no build: version, public names, typing marker, metadata.

The full check (build an sdist and a wheel, install each into a fresh virtual
environment, import, resolve the dependencies) is slow and needs the package index:
run ``.ci/check_package.sh`` by hand.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import pkgutil
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.version import InvalidVersion, Version

import covergan

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
SRC = ROOT / "src" / "covergan"


def _pyproject() -> dict[str, Any]:
    if not PYPROJECT.is_file():
        pytest.skip("not running from a source tree")
    if sys.version_info >= (3, 11):
        import tomllib

        with open(PYPROJECT, "rb") as fh:
            return tomllib.load(fh)
    pytest.skip("reading pyproject.toml needs tomllib (Python 3.11+)")


def _all_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(covergan.__path__, prefix="covergan."))


# -- version -----------------------------------------------------------------------------


def test_version_is_pep440_and_normalized() -> None:
    try:
        parsed = Version(covergan.__version__)
    except InvalidVersion:
        pytest.fail(f"covergan.__version__={covergan.__version__!r} is not a PEP 440 version")
    assert str(parsed) == covergan.__version__  # normalized form: what the wheel name uses


def test_installed_metadata_version_matches() -> None:
    try:
        installed = importlib.metadata.version("covergan")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("covergan is not installed (run `pip install -e .`)")
    assert installed == covergan.__version__, (
        "installed metadata is stale: reinstall with `pip install -e .`"
    )


def test_version_lives_in_one_place() -> None:
    project = _pyproject()
    assert "version" not in project["project"], "pyproject.toml must not set a static version"
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["hatch"]["version"]["path"] == "src/covergan/__init__.py"
    # No other source file spells the version out.
    literal = re.compile(re.escape(f'"{covergan.__version__}"'))
    others = [
        p.relative_to(ROOT).as_posix()
        for p in SRC.rglob("*.py")
        if p != SRC / "__init__.py" and literal.search(p.read_text(encoding="utf-8"))
    ]
    assert others == []


def test_changelog_has_a_section_for_this_version() -> None:
    changelog = ROOT / "CHANGELOG.md"
    if not changelog.is_file():
        pytest.skip("not running from a source tree")
    text = changelog.read_text(encoding="utf-8")
    version = Version(covergan.__version__)
    if version.is_devrelease or version.is_prerelease:
        heading = r"^## \[Unreleased\]"
    else:
        heading = rf"^## \[{re.escape(covergan.__version__)}\]"
    assert re.search(heading, text, re.MULTILINE), f"CHANGELOG.md has no {heading!r} section"


# -- public names and modules ------------------------------------------------------------


def test_every_public_name_resolves() -> None:
    assert len(set(covergan.__all__)) == len(covergan.__all__), "duplicates in __all__"
    missing = [name for name in covergan.__all__ if not hasattr(covergan, name)]
    assert missing == []


@pytest.mark.parametrize("module", _all_modules())
def test_module_imports_and_its_all_resolves(module: str) -> None:
    mod = importlib.import_module(module)
    names = getattr(mod, "__all__", [])
    assert len(set(names)) == len(names), f"duplicates in {module}.__all__"
    missing = [name for name in names if not hasattr(mod, name)]
    assert missing == [], f"{module}.__all__ names that do not resolve: {missing}"


def test_every_source_folder_is_a_package() -> None:
    # The wheel ships src/covergan; a folder of modules without __init__.py would be a
    # namespace package that pkgutil and some tools skip.
    if not SRC.is_dir():
        pytest.skip("not running from a source tree")
    folders = {p.parent for p in SRC.rglob("*.py") if "__pycache__" not in p.parts}
    assert sorted(str(f) for f in folders if not (f / "__init__.py").is_file()) == []


def test_py_typed_marker_is_in_the_package() -> None:
    assert (importlib.resources.files("covergan") / "py.typed").is_file()


# -- pyproject ---------------------------------------------------------------------------


def test_console_scripts_resolve() -> None:
    scripts: dict[str, str] = _pyproject()["project"].get("scripts", {})
    broken = []
    for name, target in scripts.items():
        module, _, attr = target.partition(":")
        try:
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as error:
            broken.append(f"{name} = {target}: {type(error).__name__}: {error}")
            continue
        if not callable(obj):
            broken.append(f"{name} = {target}: not callable")
    assert broken == []


def test_sdist_ships_tests_docs_and_changelog() -> None:
    include = _pyproject()["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
    for need in ("src/covergan", "tests", "docs", "examples", "README.md", "CHANGELOG.md"):
        assert need in include
    assert _pyproject()["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == [
        "src/covergan"
    ]


def test_optional_extras_are_declared() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    assert any(req.startswith("dask[distributed]") for req in extras["dask"])
    assert any(req.startswith("music21") for req in extras["datasets"])
