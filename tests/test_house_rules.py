"""The house rules of the code base, read from the source with ``ast`` (nothing is imported).

- Imports go downward only: ``nn.core`` < ``nn.data``, ``nn.io``, ``nn.search`` <
  ``nn.services`` < ``nn.cli`` < ``ui`` < ``pages``; packages on one floor do not import each
  other, and ``nn`` never imports Streamlit.
- Project imports are at the top of a file, not inside a function (a worker process's entry
  point may import there: it runs in a fresh interpreter).
- No file in ``nn/``, ``ui/`` or ``pages/`` is over 700 lines.
- No module uses another module's ``_private`` names.
- The databases the product makes by default are not part of the repository.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from nn.services.mine import default_mine_path
from nn.services.runs import default_runs_path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nn", "ui", "pages")
MAX_LINES = 700

FLOORS = {
    "nn.core": 0,
    "nn.data": 1,
    "nn.io": 1,
    "nn.search": 1,
    "nn.services": 2,
    "nn.cli": 3,
    "ui": 4,
    "pages": 5,
}
"""The floor of each part: a module imports from its own part or from a lower floor."""

FACADES = {"nn/__init__.py", "nn/__main__.py"}
"""The package's face (``from nn import NeuralNetwork``) and ``python -m nn``: above every floor."""


@dataclass(frozen=True)
class Import:
    file: str  # relative to the repository
    line: int
    module: str  # the module imported from (absolute)
    names: tuple[str, ...]  # the names taken from it ("" for ``import module``)
    top: bool  # at the top level of the file (not inside a function or class body)


def source_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _absolute(path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports(path: Path) -> list[Import]:
    found: list[Import] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
            )
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append(Import(relative(path), child.lineno, alias.name, ("",), top))
            elif isinstance(child, ast.ImportFrom):
                names = tuple(alias.name for alias in child.names)
                found.append(
                    Import(relative(path), child.lineno, _absolute(path, child), names, top)
                )
            visit(child, inner)

    visit(tree(path), True)
    return found


def part(module: str) -> str | None:
    """The floor key of a project module (``nn.core.layers`` -> ``nn.core``), else None."""
    for key in sorted(FLOORS, key=len, reverse=True):
        if module == key or module.startswith(key + "."):
            return key
    return None


def is_project(module: str) -> bool:
    return module.split(".")[0] in PACKAGES


# ------------------------------------------------------------------------------ the rules
def test_the_rules_see_every_part_of_the_project():
    parts = {part(module_name(p)) for p in source_files() if relative(p) not in FACADES}
    assert parts == set(FLOORS), "a package without a floor: add it to FLOORS"


def test_imports_go_downward_only():
    wrong = []
    for path in source_files():
        here = relative(path)
        if here in FACADES:
            continue
        mine = part(module_name(path))
        for imp in imports(path):
            theirs = part(imp.module)
            if theirs is None or theirs == mine:
                continue
            if FLOORS[theirs] >= FLOORS[mine]:
                wrong.append(f"{here}:{imp.line}: {mine} imports {imp.module} ({theirs})")
    assert not wrong, "imports that go up or sideways:\n" + "\n".join(wrong)


def test_nn_never_imports_streamlit():
    wrong = [
        f"{imp.file}:{imp.line}: {imp.module}"
        for path in source_files()
        if relative(path).startswith("nn/")
        for imp in imports(path)
        if imp.module.split(".")[0] == "streamlit"
    ]
    assert not wrong, "nn/ imports Streamlit:\n" + "\n".join(wrong)


WORKER_ENTRY_POINTS: set[tuple[str, str]] = set()
"""``(file, function)`` of a worker process's entry point, whose imports may sit inside it."""


def _functions_with_imports(path: Path) -> list[tuple[str, int, str]]:
    """``(function, line, module)`` of every project import inside a function of ``path``."""
    found = []
    for node in ast.walk(tree(path)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom) and sub.level:
                    found.append((node.name, sub.lineno, "." * sub.level + (sub.module or "")))
                elif isinstance(sub, ast.ImportFrom) and is_project(sub.module or ""):
                    found.append((node.name, sub.lineno, sub.module))
                elif isinstance(sub, ast.Import):
                    found += [
                        (node.name, sub.lineno, a.name) for a in sub.names if is_project(a.name)
                    ]
    return found


@pytest.mark.parametrize("path", source_files(), ids=relative)
def test_project_imports_are_at_the_top(path):
    inside = [
        f"{relative(path)}:{line}: {module} inside {function}()"
        for function, line, module in _functions_with_imports(path)
        if (relative(path), function) not in WORKER_ENTRY_POINTS
    ]
    assert not inside, "move these imports to the top of the file:\n" + "\n".join(inside)


@pytest.mark.parametrize("path", source_files(), ids=relative)
def test_no_file_is_over_700_lines(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{relative(path)} has {n} lines; split it by concern"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _project_names(path: Path) -> dict[str, str]:
    """Names bound by an import from the project in ``path`` and what they stand for:
    ``import nn.x as m`` -> ``nn.x``, ``from nn.x import Thing`` -> ``nn.x.Thing``."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if is_project(alias.name):
                    name = alias.asname or alias.name.split(".")[0]
                    bound[name] = alias.name if alias.asname else name
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(path, node)
            if is_project(module):
                for alias in node.names:
                    bound[alias.asname or alias.name] = f"{module}.{alias.name}"
    return bound


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def test_no_module_uses_another_modules_private_names():
    wrong = []
    for path in source_files():
        here = module_name(path)
        for imp in imports(path):
            if is_project(imp.module) and imp.module != here:
                wrong += [
                    f"{imp.file}:{imp.line}: {imp.module}.{n}" for n in imp.names if _private(n)
                ]
        bound = _project_names(path)
        for node in ast.walk(tree(path)):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            dotted = _dotted(node.value)
            if dotted is None or dotted.split(".")[0] not in bound:
                continue
            first, _, rest = dotted.partition(".")
            target = bound[first] + (f".{rest}" if rest else "")
            if not target.startswith(here + "."):
                wrong.append(f"{relative(path)}:{node.lineno}: {target}.{node.attr}")
    assert not wrong, "another module's private names:\n" + "\n".join(sorted(set(wrong)))


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout"
)
def test_default_databases_do_not_dirty_the_repository(monkeypatch):
    monkeypatch.delenv("NN_RUNS_DB", raising=False)
    monkeypatch.delenv("NN_MINE_DB", raising=False)
    monkeypatch.chdir(ROOT)
    files = [default_runs_path(), default_mine_path()]
    names = [p.resolve().relative_to(ROOT).as_posix() for p in files]
    names += [f"{n}-{end}" for n in names for end in ("wal", "shm", "journal")]
    tracked = subprocess.run(
        ["git", "ls-files", "--", *names], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert not tracked, f"committed: {tracked}"
    ignored = subprocess.run(
        ["git", "check-ignore", "--", *names], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    assert sorted(ignored) == sorted(names), f"not ignored: {sorted(set(names) - set(ignored))}"
