"""The architecture of ARCHITECTURE.md, checked on the source.

The layer table lives in ARCHITECTURE.md and is parsed from there, so the document
and this test cannot drift apart. From the source under ``src/chainrule`` (read with
``ast``, never imported) the test collects every import, at module level or inside a
function, and fails on

* an import that goes up the layer table (to a higher row, or to the right within a
  row);
* an import cycle between modules;
* an import of another module's private name (``from .x import _y``, ``x._y`` on an
  imported module ``x``, or a private submodule of another package);
* a module missing from the table, or a table entry naming no module;
* a module over 600 lines, or a function over 80 lines.

A subpackage (``chainrule/io/``, ``chainrule/cli/``) is one module of the table: its
files belong to their package's layer, imports between them are the package's own
business, and they may share private names. ``chainrule/__init__.py``, the package
facade, is the module ``__init__``.

The second half of the file feeds the checker small synthetic packages, to show that
each check can fail.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "chainrule"
DOC = ROOT / "ARCHITECTURE.md"
PACKAGE = "chainrule"
FACADE = "__init__"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


# --- the layer table ---------------------------------------------------------------

def parse_layer_table(markdown: str) -> list[tuple[int, str]]:
    """``(layer, module)`` pairs of the first markdown table whose header starts with
    ``Layer``: the first column holds the layer number, the second the modules, each
    in backticks. Other columns are free text."""
    rows: list[tuple[int, str]] = []
    in_table = False
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.lstrip().startswith("|"):
            if in_table:
                break
            continue
        if not in_table:
            in_table = cells[0].lower() == "layer"
            continue
        if set(cells[0]) <= set("-: "):
            continue  # the header's separator row
        rows.extend((int(cells[0]), name) for name in re.findall(r"`([^`]+)`", cells[1]))
    return rows


def rank_of(rows) -> dict[str, tuple[int, int]]:
    """``module -> (layer, place in its row)``: the table's order, bottom to top and,
    within a row, left to right."""
    rank: dict[str, tuple[int, int]] = {}
    place: dict[int, int] = {}
    for layer, name in rows:
        place[layer] = place.get(layer, -1) + 1
        rank.setdefault(name, (layer, place[layer]))
    return rank


# --- reading the source --------------------------------------------------------------

@dataclass(frozen=True)
class Edge:
    """One import of a module of the package by another (or by itself)."""

    importer: str
    target: str
    where: str        # "file.py:line"
    lazy: bool        # inside a function


@dataclass(frozen=True)
class PrivateUse:
    """A private name (or private submodule) of ``owner`` used from ``importer``."""

    importer: str
    owner: str
    name: str
    where: str


def _dotted(path: Path, src: Path, package: str) -> tuple[str, ...]:
    parts = (package, *path.relative_to(src).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _unit(dotted: tuple[str, ...]) -> str:
    """The module of the layer table that ``dotted`` (a name in the package) is part of."""
    return FACADE if len(dotted) == 1 else dotted[1]


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


class _ModuleSource:
    """The imports of one source file of the package, as edges and private uses."""

    def __init__(self, path: Path, src: Path, package: str, modules: set):
        self.path, self.package, self.modules = path, package, modules
        self.tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        self.dotted = _dotted(path, src, package)
        self.is_package = path.name == "__init__.py"
        self.unit = _unit(self.dotted)
        self.label = str(path.relative_to(src.parent))
        self.edges: list[Edge] = []
        self.private: list[PrivateUse] = []
        self.bindings: dict[str, tuple[str, ...]] = {}   # local name -> module it names
        self._collect()

    # -- resolution ----------------------------------------------------------------

    def _resolve(self, level: int, module: str | None) -> tuple[str, ...]:
        base = self.dotted if self.is_package else self.dotted[:-1]
        if level:
            base = base[:len(base) - (level - 1)]
        else:
            base = ()
        return base + (tuple(module.split(".")) if module else ())

    def _mine(self, dotted: tuple[str, ...]) -> bool:
        return bool(dotted) and dotted[0] == self.package

    def _record(self, dotted, node, lazy, name=None):
        """An import of module ``dotted``, taking ``name`` from it when given."""
        target = _unit(dotted)
        where = f"{self.label}:{node.lineno}"
        self.edges.append(Edge(self.unit, target, where, lazy))
        if target == self.unit:
            return  # a package's own files may share private names
        # The top-level modules may be underscore modules (_validation): their public
        # names are public. Below that, an underscore segment is private to its package.
        for segment in dotted[2:]:
            if _is_private(segment):
                self.private.append(PrivateUse(self.unit, target, ".".join(dotted[1:]), where))
                return
        if name is not None and _is_private(name):
            self.private.append(PrivateUse(self.unit, target,
                                           ".".join((*dotted[1:], name)), where))

    # -- the walk --------------------------------------------------------------------

    def _collect(self):
        other_bindings = set()
        for node, lazy in self._walk(self.tree, False):
            if isinstance(node, ast.Import):
                self._import(node, lazy)
            elif isinstance(node, ast.ImportFrom):
                self._import_from(node, lazy)
            elif isinstance(node, ast.Call):
                self._import_module_call(node, lazy)
            other_bindings |= _bound_names(node)
        # A name also bound to something else (an argument, an assignment) is not
        # reliably a module: leave it out rather than guess.
        for name in other_bindings:
            self.bindings.pop(name, None)
        for node, _ in self._walk(self.tree, False):
            if isinstance(node, ast.Attribute):
                self._attribute(node)

    def _walk(self, node, lazy):
        for child in ast.iter_child_nodes(node):
            yield child, lazy
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                               ast.Lambda))
            yield from self._walk(child, inner)

    def _import(self, node, lazy):
        for alias in node.names:
            dotted = tuple(alias.name.split("."))
            if not self._mine(dotted):
                continue
            self._record(dotted, node, lazy)
            if alias.asname:
                self.bindings[alias.asname] = dotted
            else:
                self.bindings[dotted[0]] = dotted[:1]

    def _import_from(self, node, lazy):
        base = self._resolve(node.level, node.module)
        if not self._mine(base):
            return
        for alias in node.names:
            if base + (alias.name,) in self.modules:   # a submodule, not a name
                self._record(base + (alias.name,), node, lazy)
                self.bindings[alias.asname or alias.name] = base + (alias.name,)
            else:
                self._record(base, node, lazy, alias.name)

    def _import_module_call(self, node, lazy):
        """``importlib.import_module("chainrule.x")``; a relative name (``".x"``) is
        resolved as the same import statement would be. A computed name is skipped."""
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name != "import_module" or not node.args:
            return
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            return  # computed at run time; nothing to check statically
        text = first.value
        level = len(text) - len(text.lstrip("."))
        dotted = self._resolve(level, text[level:] or None)
        if self._mine(dotted):
            self._record(dotted, node, lazy)

    def _attribute(self, node):
        chain = []
        value = node
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if not isinstance(value, ast.Name) or value.id not in self.bindings:
            return
        chain.reverse()
        dotted = self.bindings[value.id]
        i = 0
        while i < len(chain) and dotted + (chain[i],) in self.modules:
            dotted, i = dotted + (chain[i],), i + 1
        # Only the attribute right after the module path reports (``low._x`` in
        # ``low._x.y``), so that each use counts once.
        if i == len(chain) - 1:
            target = _unit(dotted)
            if target != self.unit and _is_private(chain[i]):
                self.private.append(PrivateUse(self.unit, target,
                                               ".".join((*dotted[1:], chain[i])),
                                               f"{self.label}:{node.lineno}"))


def _bound_names(node) -> set:
    """Names ``node`` binds other than by an import."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        names = {node.name}
        if not isinstance(node, ast.ClassDef):
            args = node.args
            names |= {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
            names |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
        return names
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
        return {node.id}
    if isinstance(node, ast.ExceptHandler) and node.name:
        return {node.name}
    return set()


@dataclass
class Source:
    """Everything the checks need to know about a package's source tree."""

    units: dict          # module of the table -> list of its files
    edges: list
    private: list
    files: list          # (label, path)


def read_source(src: Path, package: str = PACKAGE) -> Source:
    paths = sorted(p for p in src.rglob("*.py") if "__pycache__" not in p.parts)
    modules = {_dotted(p, src, package) for p in paths}
    units: dict[str, list] = {}
    edges, private, files = [], [], []
    for path in paths:
        module = _ModuleSource(path, src, package, modules)
        units.setdefault(module.unit, []).append(module.label)
        edges += module.edges
        private += module.private
        files.append((module.label, path))
    return Source(units, edges, private, files)


# --- the checks ------------------------------------------------------------------------

def table_problems(rows, units) -> list[str]:
    problems = []
    seen: dict[str, int] = {}
    for layer, name in rows:
        if name in seen:
            problems.append(f"`{name}` is listed twice (layers {seen[name]} and {layer})")
        seen[name] = layer
    for name in sorted(set(units) - set(seen)):
        problems.append(f"module `{name}` ({', '.join(units[name])}) is missing from the "
                        f"layer table")
    for name in sorted(set(seen) - set(units)):
        problems.append(f"the layer table names `{name}`, which is not a module of the "
                        f"package")
    return problems


def upward_imports(edges, rank) -> list[str]:
    """Imports of a module higher in the table: in a higher row, or in the same row
    to the right of the importer."""
    problems = []
    for e in edges:
        if e.importer not in rank or e.target not in rank or e.importer == e.target:
            continue
        (low, low_place), (high, high_place) = rank[e.importer], rank[e.target]
        if (high, high_place) > (low, low_place):
            where = f"layer {high}" if high > low else f"layer {high}, after it in the row"
            problems.append(f"{e.where}: {e.importer} (layer {low}) imports {e.target} "
                            f"({where}){' inside a function' if e.lazy else ''}")
    return problems


def import_cycles(edges) -> list[str]:
    """One line per strongly connected group of two or more modules (Tarjan)."""
    graph: dict[str, set] = {}
    for e in edges:
        graph.setdefault(e.importer, set())
        graph.setdefault(e.target, set())
        if e.importer != e.target:
            graph[e.importer].add(e.target)
    groups = _strongly_connected(graph)
    problems = []
    for group in groups:
        if len(group) < 2:
            continue
        inside = sorted({f"{e.importer} -> {e.target} ({e.where})" for e in edges
                         if e.importer in group and e.target in group
                         and e.importer != e.target})
        problems.append(f"import cycle between {', '.join(sorted(group))}: "
                        + "; ".join(inside))
    return problems


def _strongly_connected(graph) -> list[set]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set = set()
    groups: list[set] = []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def private_imports(private) -> list[str]:
    return [f"{p.where}: {p.importer} uses {p.name}, a private name of {p.owner}"
            for p in private]


def _docstring_lines(node) -> int:
    body = getattr(node, "body", None)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[0].end_lineno - body[0].lineno + 1
    return 0


def long_functions(files, limit=MAX_FUNCTION_LINES) -> list[str]:
    """Functions (methods and nested functions included) over ``limit`` lines, counted
    from ``def`` to the last line, without the docstring."""
    problems = []
    for label, path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1 - _docstring_lines(node)
                if n > limit:
                    problems.append(f"{label}:{node.lineno}: {node.name} has {n} lines "
                                    f"(without its docstring), more than {limit}")
    return problems


def long_modules(files, limit=MAX_MODULE_LINES) -> list[str]:
    problems = []
    for label, path in files:
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > limit:
            problems.append(f"{label} has {n} lines, more than {limit}")
    return problems


def _report(problems) -> str:
    return f"{len(problems)} problem(s):\n  " + "\n  ".join(problems)


# --- the package ------------------------------------------------------------------------

def _table():
    return parse_layer_table(DOC.read_text(encoding="utf-8"))


def _source():
    return read_source(SRC)


def test_the_layer_table_lists_every_module_once():
    rows = _table()
    assert rows, "ARCHITECTURE.md has no layer table (a table whose header starts 'Layer')"
    problems = table_problems(rows, _source().units)
    assert not problems, _report(problems)


def test_imports_go_down_the_layer_table():
    problems = upward_imports(_source().edges, rank_of(_table()))
    assert not problems, _report(problems)


def test_no_import_cycles():
    problems = import_cycles(_source().edges)
    assert not problems, _report(problems)


def test_no_module_uses_another_modules_private_names():
    problems = private_imports(_source().private)
    assert not problems, _report(problems)


def test_no_module_over_600_lines():
    problems = long_modules(_source().files)
    assert not problems, _report(problems)


def test_no_function_over_80_lines():
    problems = long_functions(_source().files)
    assert not problems, _report(problems)


# --- the checker can fail -----------------------------------------------------------------

TABLE = """\
Some prose.

| Layer | Modules | Owns |
|------:|---------|------|
| 0 | `_base`, `low` | foundations, with `backticks` in the last column |
| 1 | `high`, `sub` | the rest |
| 2 | `__init__` | the facade |

More prose, and a second table that is not the layer table:

| Layer | Modules |
|---|---|
| 9 | `ghost` |
"""


def _package(tmp_path, files: dict) -> Source:
    src = tmp_path / "pkg"
    for name, text in {"__init__.py": "", "_base.py": "", "low.py": "", "high.py": "",
                       "sub/__init__.py": "", "sub/part.py": "", **files}.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return read_source(src, "pkg")


def test_table_parser_reads_the_first_layer_table_only():
    assert parse_layer_table(TABLE) == [(0, "_base"), (0, "low"), (1, "high"), (1, "sub"),
                                        (2, "__init__")]


def test_a_clean_package_passes(tmp_path):
    source = _package(tmp_path, {
        "low.py": "from . import _base\nfrom ._base import helper\n",
        "high.py": "from .low import thing\nfrom pkg import low\nlow.thing\n",
        "sub/__init__.py": "from .part import _shared\nfrom .. import high\n",
        "sub/part.py": "from . import _shared_too\nimport pkg.low as lo\nlo.public\n",
        "__init__.py": "from . import high, low, sub\n",
    })
    rank = rank_of(parse_layer_table(TABLE))
    assert table_problems(parse_layer_table(TABLE), source.units) == []
    assert upward_imports(source.edges, rank) == []
    assert import_cycles(source.edges) == []
    assert private_imports(source.private) == []


def test_table_problems_name_a_missing_and_an_unknown_module(tmp_path):
    source = _package(tmp_path, {"extra.py": ""})
    rows = parse_layer_table(TABLE) + [(1, "gone"), (0, "low")]
    problems = "\n".join(table_problems(rows, source.units))
    assert "module `extra` (pkg/extra.py) is missing" in problems
    assert "names `gone`, which is not a module" in problems
    assert "`low` is listed twice" in problems


def test_an_upward_import_fails_even_inside_a_function(tmp_path):
    source = _package(tmp_path, {
        "low.py": "def f():\n    from .sub.part import x\n",
        "_base.py": "import pkg.high\n",
        "high.py": "from .sub import part\n",
    })
    problems = upward_imports(source.edges, rank_of(parse_layer_table(TABLE)))
    assert problems == [
        "pkg/_base.py:1: _base (layer 0) imports high (layer 1)",
        "pkg/high.py:1: high (layer 1) imports sub (layer 1, after it in the row)",
        "pkg/low.py:2: low (layer 0) imports sub (layer 1) inside a function",
    ]


def test_an_import_cycle_fails(tmp_path):
    source = _package(tmp_path, {
        "high.py": "from . import sub\n",
        "sub/part.py": "def f():\n    import importlib\n"
                       "    return importlib.import_module('pkg.high')\n",
    })
    problems = import_cycles(source.edges)
    assert len(problems) == 1
    assert problems[0].startswith("import cycle between high, sub: ")
    assert "sub -> high (pkg/sub/part.py:3)" in problems[0]


def test_private_names_of_another_module_fail(tmp_path):
    source = _package(tmp_path, {
        "low.py": "from ._base import _helper\n",
        "high.py": "from . import low\nimport pkg.sub\n"
                   "def f():\n    return low._secret, pkg.sub.part._x, low.public\n",
        "__init__.py": "from .sub._impl import y\nfrom .sub import _z\n",
        "sub/_impl.py": "",
    })
    assert private_imports(source.private) == [
        "pkg/__init__.py:1: __init__ uses sub._impl, a private name of sub",
        "pkg/__init__.py:2: __init__ uses sub._z, a private name of sub",
        "pkg/high.py:4: high uses low._secret, a private name of low",
        "pkg/high.py:4: high uses sub.part._x, a private name of sub",
        "pkg/low.py:1: low uses _base._helper, a private name of _base",
    ]


def test_a_shadowed_module_name_is_not_mistaken_for_the_module(tmp_path):
    source = _package(tmp_path, {
        "high.py": "from . import low\ndef f(low):\n    return low._cache\n",
    })
    assert private_imports(source.private) == []


def test_long_functions_and_modules_fail(tmp_path):
    def body(n):
        return "\n".join(f"    x{i} = {i}" for i in range(n))

    source = _package(tmp_path, {
        # 83 lines, 80 without the docstring: at the limit
        "low.py": f'def short():\n    """Doc\n\n    string."""\n{body(79)}\n',
        # 82 lines of code
        "high.py": f"def long():\n{body(80)}\n    return x0\n",
    })
    assert long_functions(source.files) == [
        "pkg/high.py:1: long has 82 lines (without its docstring), more than 80"]
    assert long_modules(source.files, limit=82) == ["pkg/low.py has 83 lines, more than 82"]
