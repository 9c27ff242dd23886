"""The pins match the imports: every runtime pin is imported by the package, every import is pinned.

Runtime code is performance/ and run.py; its third-party imports must be pinned in requirements.txt,
and each pin there must be imported by it (a pin nothing imports is weight on every install).
Tests and benches may also use requirements-test.txt, whose pins must be used by them or be a tool.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = {"ruff"}  # run as programs (make test), never imported


def _pins(path: Path) -> set[str]:
    """Distribution names pinned in a requirements file (its `-r` includes left out)."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        m = re.match(r"([A-Za-z0-9_.\-]+)==\S+$", line)
        assert m, f"{path.name}: {line!r} is not pinned as name==version"
        names.add(_norm(m.group(1)))
    return names


def _norm(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _imports(paths: list[Path], local: set[str]) -> dict[str, str]:
    """Top-level third-party module name -> one file importing it (lazy imports in functions too)."""
    found: dict[str, str] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in local:
                    continue
                found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def _dists(imports: dict[str, str]) -> dict[str, str]:
    """Distribution -> importing file, through the installed packages' own file lists."""
    table = metadata.packages_distributions()
    for dist in metadata.distributions():  # a lone extension module (aalink's .so): 3.11 maps only .py files
        for f in dist.files or ():
            if len(f.parts) == 1 and f.suffix in (".so", ".pyd"):
                table.setdefault(f.name.split(".")[0], []).append(dist.metadata["Name"])
    out = {}
    for module, where in imports.items():
        assert module in table, f"{where}: imports {module!r}, which no installed distribution provides"
        for dist in table[module]:
            out[_norm(dist)] = where
    return out


def _py(*dirs: str) -> list[Path]:
    return [p for d in dirs for p in sorted((ROOT / d).rglob("*.py"))]


RUNTIME = _py("performance") + [ROOT / "run.py"]
DEV = _py("tests", "bench")
LOCAL = {"performance", "run"} | {p.stem for p in DEV}


def test_every_runtime_import_is_pinned_and_every_runtime_pin_imported() -> None:
    pins = _pins(ROOT / "requirements.txt")
    used = _dists(_imports(RUNTIME, LOCAL))
    unpinned = {d: w for d, w in used.items() if d not in pins}
    assert not unpinned, f"imported but not pinned in requirements.txt: {unpinned}"
    unused = pins - set(used)
    assert not unused, f"pinned in requirements.txt but imported by nothing in performance/ or run.py: {unused}"


def test_test_pins_are_used_by_tests_and_tests_import_only_pinned_packages() -> None:
    runtime = _pins(ROOT / "requirements.txt")
    test = _pins(ROOT / "requirements-test.txt")
    assert not runtime & test, f"pinned in both files: {runtime & test}"
    used = _dists(_imports(DEV, LOCAL))
    unpinned = {d: w for d, w in used.items() if d not in runtime | test}
    assert not unpinned, f"imported by tests or benches but pinned nowhere: {unpinned}"
    unused = test - set(used) - TOOLS
    assert not unused, f"pinned in requirements-test.txt but imported by no test or bench: {unused}"
    assert "-r requirements.txt" in (ROOT / "requirements-test.txt").read_text()
