"""The layers of performance/ import one way, and nothing imports in a circle.

The AST is read, not imported: module-level, function-level and `if TYPE_CHECKING:` imports all count. Each module
belongs to the first layer whose prefix matches its dotted name (longest prefix wins); an import
may point to its own layer or any lower one, never up. docs/architecture.md explains the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "performance"

# dotted-name prefix -> layer (higher layers may import lower ones, never the reverse)
LAYERS: dict[str, int] = {
    "performance": 0,  # the package face: __version__, STARTED
    "performance.faults": 0, "performance.safe_files": 0, "performance.media": 0,
    "performance.protocol": 1,
    "performance.textgen": 2,  # models know nothing of shows: textgen imports no show module
    "performance.show": 3,  # a scene names models, lengths and trainers, so show sits above textgen
    "performance.engine": 4, "performance.worker": 4,
    "performance.controllers": 5, "performance.stage": 5, "performance.sound": 5, "performance.record": 5,
    "performance.operator": 5, "performance.install": 5,
    "performance.runtime": 6,
    "performance.play": 7, "performance.check": 7, "performance.render": 7, "performance.simulate": 7,
    "performance.cli": 7, "performance.install.supervisor": 7, "performance.install.still": 7,
    "performance.model_commands": 7, "performance.model_bench": 7,  # run.py train/sample/bench
}
LAYER_NAMES = {0: "leaves", 1: "protocol", 2: "textgen", 3: "show", 4: "engine+worker",
               5: "adapters (controllers, stage, sound, record, operator, install)", 6: "runtime", 7: "entry points"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def layer_of(name: str) -> int:
    best = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len)
    return LAYERS[best]


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every performance module that `name` imports, anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t.startswith("performance"):
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports_of(m, p, known) for m, p in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_no_import_cycle() -> None:
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_imports_point_down_the_layers() -> None:
    upward = []
    for mod, deps in graph().items():
        for dep in deps:
            if layer_of(dep) > layer_of(mod):
                upward.append(f"{mod} ({LAYER_NAMES[layer_of(mod)]}) imports {dep} ({LAYER_NAMES[layer_of(dep)]})")
    assert not upward, "imports that point up a layer:\n" + "\n".join(sorted(upward))


MAX_CLASS_LINES = 400
MAX_FUNCTION_LINES = 60
# (module path, name): why it may be longer; docs/architecture.md lists the same (none today)
LONG_ALLOWED: dict[tuple[str, str], str] = {}


def test_classes_and_functions_stay_small() -> None:
    """A class past 400 lines or a function past 60 is split by concern (or listed above, with why)."""
    long = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                span = node.end_lineno - node.lineno + 1
                limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
                key = (str(path.relative_to(ROOT)), node.name)
                if span > limit and key not in LONG_ALLOWED:
                    long.append(f"{key[0]}:{node.lineno} {node.name}: {span} lines (at most {limit})")
    assert not long, "split by concern, or list with a reason in LONG_ALLOWED and docs/architecture.md:\n" + "\n".join(long)


def _function_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found = {}
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    found[node.lineno] = node
    return [found[k] for k in sorted(found)]


def _says_why(lines: list[str], node: ast.Import | ast.ImportFrom) -> bool:
    """`# lazy: why` on the import's line, or on the comment line above its group of imports."""
    if "# lazy:" in lines[node.lineno - 1]:
        return True
    i = node.lineno - 2
    while i >= 0 and (not lines[i].strip() or lines[i].lstrip().startswith(("import ", "from "))):
        if "# lazy:" in lines[i]:
            return True
        i -= 1
    return i >= 0 and lines[i].lstrip().startswith("# lazy:")


def test_function_level_imports_say_why() -> None:
    """An import inside a function keeps `run.py --help` or start-up light (torch, pygame, a device or
    network library, a subcommand's own modules); each says which, with `# lazy: ...`. Anything else
    belongs at the top of its module (docs/architecture.md, "Imports inside functions")."""
    unexplained = []
    for path in sorted([*PKG.rglob("*.py"), ROOT / "run.py"]):
        text = path.read_text()
        lines = text.splitlines()
        for node in _function_imports(ast.parse(text)):
            if not _says_why(lines, node):
                unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not unexplained, "function-level imports without a `# lazy:` reason:\n" + "\n".join(unexplained)
