"""Which error classes a CLI command can exit with, read from the source (no code runs).

Two estimates bracket the truth:

* `may_raise` (an over-estimate): every error class raised anywhere in the modules the command
  imports, transitively. A code a help text promises must be in it.
* `raises` (an under-estimate): the error classes raised in the functions the command calls,
  followed through the calls the source names unambiguously (functions and classes of project
  modules, `self.method`), minus those a `try` around the call catches. A code in it must be in
  the command's help text. Calls through other objects are not followed, so this set misses
  some codes; it never holds one that cannot happen, unless a condition in the code rules out
  a branch.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

from mlgitops import errors
from tests.support.project import REPO_ROOT

SRC = REPO_ROOT / "src"
# Modules that name error classes to define or describe them, not to raise them.
DESCRIBING = {"mlgitops.errors", "mlgitops.cli.exitcodes"}
# A call whose arguments describe exit codes (a help text's), raising none of them.
DESCRIBE_CALLS = {"epilog", "isinstance", "issubclass", "suppress"}


def error_classes() -> dict[str, type[errors.MlgitopsError]]:
    """Every MlgitopsError subclass defined in the project, by name."""
    found: dict[str, type[errors.MlgitopsError]] = {}
    todo = [errors.MlgitopsError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


def module_file(name: str) -> Path | None:
    base = SRC / name.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@dataclass
class Module:
    name: str
    tree: ast.Module
    # alias -> (module, symbol or None for the module itself), from every import in the file.
    imports: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = field(default_factory=dict)
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)


@cache
def load(name: str) -> Module | None:
    path = module_file(name)
    if path is None:
        return None
    module = Module(name, ast.parse(path.read_text(encoding="utf-8")))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("mlgitops"):
                    module.imports[alias.asname or alias.name] = (alias.name, None)
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                source = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                source = f"{source}.{node.module}" if node.module else source
            if not source.startswith("mlgitops"):
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                target = (submodule, None) if module_file(submodule) else (source, alias.name)
                module.imports[alias.asname or alias.name] = target
    for node in module.tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            module.functions[node.name] = node
        elif isinstance(node, ast.ClassDef):
            module.classes[node.name] = node
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    module.functions[f"{node.name}.{item.name}"] = item
    return module


# --- The over-estimate: modules reachable by imports -------------------------------------------


def imported_modules(start: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen or load(name) is None:
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        todo.extend(module for module, _ in load(name).imports.values())  # type: ignore[union-attr]
    return seen


def _resolve_error(node: ast.AST, module: Module) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.attr
    return None


def may_raise(start: set[str]) -> set[str]:
    found: set[str] = set()
    for name in imported_modules(start) - DESCRIBING:
        module = load(name)
        assert module is not None
        walker = _Walker(module, None)
        walker.visit(module.tree)
        found |= {error for error, _ in walker.raised}
    return found


# --- The under-estimate: calls followed function by function ------------------------------------

Key = tuple[str, str]  # (module, qualified function name)


def _error_bases(names: set[str]) -> set[type[errors.MlgitopsError]]:
    known = error_classes()
    return {known[n] for n in names if n in known}


def _caught_by(handler: ast.ExceptHandler, module: Module) -> set[str] | None:
    """The error names a handler stops; None for one that stops everything (Exception, bare)."""
    if any(isinstance(n, ast.Raise) and n.exc is None for n in ast.walk(handler)):
        return set()  # it re-raises what it caught
    if handler.type is None:
        return None
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    names: set[str] = set()
    for node in types:
        name = _resolve_error(node, module)
        if name in ("Exception", "BaseException", "MlgitopsError"):
            return None
        if name is not None:
            names.add(name)
    return names


@dataclass
class _Site:
    """A call or raise inside a function, with what the `try` statements around it catch."""

    catches: list[set[str] | None]


class _Walker(ast.NodeVisitor):
    def __init__(self, module: Module, owner: str | None) -> None:
        self.module = module
        self.owner = owner  # the enclosing class, for self.method
        self.catches: list[set[str] | None] = []
        self.raised: list[tuple[str, list[set[str] | None]]] = []
        self.calls: list[tuple[Key, list[set[str] | None]]] = []

    def visit_Try(self, node: ast.Try) -> None:
        caught: set[str] | None = set()
        for handler in node.handlers:
            stops = _caught_by(handler, self.module)
            caught = None if stops is None or caught is None else caught | stops
        self.catches.append(caught)
        for statement in node.body:
            self.visit(statement)
        self.catches.pop()
        for part in (*node.handlers, *node.orelse, *node.finalbody):
            self.visit(part)

    def visit_TryStar(self, node: ast.TryStar) -> None:
        self.visit_Try(node)  # type: ignore[arg-type]

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        for statement in node.body:  # not the handler's type: catching is not raising
            self.visit(statement)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        for statement in node.body:  # not its annotations or decorators
            self.visit(statement)
        for default in (*node.args.defaults, *node.args.kw_defaults):
            if default is not None:
                self.visit(default)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.visit_FunctionDef(node)  # type: ignore[arg-type]

    def _raise(self, names: set[str]) -> None:
        for name in sorted(names):
            self.raised.append((name, list(self.catches)))

    # An error class used in code (raised, constructed, chosen from a table, its exit_code) can
    # end the command with its code; one in an annotation, an except clause or an isinstance
    # check cannot.
    def visit_Name(self, node: ast.Name) -> None:
        if node.id in error_classes():
            self._raise({node.id})
        else:
            self._raise(_global_errors(self.module, node.id))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in error_classes() and isinstance(node.value, ast.Name):
            self._raise({node.attr})
        self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> None:
        return

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for statement in node.body:  # not its bases: subclassing is not raising
            self.visit(statement)

    def visit_Call(self, node: ast.Call) -> None:
        name = _resolve_error(node.func, self.module)
        if name in DESCRIBE_CALLS:  # checking, catching or documenting
            return
        for key in _targets(node.func, self.module, self.owner):
            self.calls.append((key, list(self.catches)))
        self.generic_visit(node)


@cache
def _module_globals(name: str) -> dict[str, set[str]]:
    """Module-level names bound to values that mention error classes (tables of them)."""
    module = load(name)
    assert module is not None
    known = error_classes()
    found: dict[str, set[str]] = {}
    for node in module.tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        value = getattr(node, "value", None)
        if not targets or value is None:
            continue
        described = {
            id(inner)
            for call in ast.walk(value)
            if isinstance(call, ast.Call) and _resolve_error(call.func, module) in DESCRIBE_CALLS
            for inner in ast.walk(call)
        }
        mentioned = {
            n.id if isinstance(n, ast.Name) else n.attr
            for n in ast.walk(value)
            if isinstance(n, ast.Name | ast.Attribute)
            and id(n) not in described
            and (n.id if isinstance(n, ast.Name) else n.attr) in known
        }
        for target in targets:
            if isinstance(target, ast.Name) and mentioned:
                found[target.id] = mentioned
    return found


def _global_errors(module: Module, name: str) -> set[str]:
    if name in module.imports:
        target, symbol = module.imports[name]
        if symbol is not None and load(target) is not None:
            return _module_globals(target).get(symbol, set())
        return set()
    return _module_globals(module.name).get(name, set())


def _targets(func: ast.AST, module: Module, owner: str | None) -> Iterator[Key]:
    """The project functions a call expression names unambiguously."""
    if isinstance(func, ast.Name):
        yield from _named(module, func.id)
    elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        base = func.value.id
        if base in ("self", "cls") and owner is not None:
            if f"{owner}.{func.attr}" in module.functions:
                yield (module.name, f"{owner}.{func.attr}")
        elif base in module.imports:
            target, symbol = module.imports[base]
            if symbol is None:
                other = load(target)
                if other is not None:
                    yield from _named(other, func.attr)
        elif base in module.classes and f"{base}.{func.attr}" in module.functions:
            yield (module.name, f"{base}.{func.attr}")


def _named(module: Module, name: str) -> Iterator[Key]:
    if name in module.functions:
        yield (module.name, name)
    elif name in module.classes:
        for method in ("__init__", "__post_init__"):
            if f"{name}.{method}" in module.functions:
                yield (module.name, f"{name}.{method}")
    elif name in module.imports:
        target, symbol = module.imports[name]
        other = load(target)
        if other is not None and symbol is not None:
            yield from _named(other, symbol)


def _filtered(names: set[str], catches: list[set[str] | None]) -> set[str]:
    known = error_classes()
    kept = set(names)
    for caught in catches:
        if caught is None:
            return set()
        bases = tuple(known[c] for c in caught if c in known)
        kept = {n for n in kept if not (bases and issubclass(known[n], bases))}
    return kept


@cache
def _walk(key: Key) -> _Walker:
    module = load(key[0])
    assert module is not None
    function = module.functions[key[1]]
    # The function's own imports win: two functions may import different things as one name.
    local = dict(_imports_in(function, module, scoped=True))
    scoped = replace(module, imports={**module.imports, **local}) if local else module
    owner = key[1].split(".")[0] if "." in key[1] else None
    walker = _Walker(scoped, owner)
    walker.visit(function)
    return walker


def raises(entry: Key) -> set[str]:
    """The error classes `entry` raises through the calls the source names unambiguously."""
    result: dict[Key, set[str]] = {}
    changed = True
    while changed:  # a fixpoint over the call graph from entry (recursion converges)
        changed = False
        todo, seen = [entry], set()
        while todo:
            key = todo.pop()
            if key in seen:
                continue
            seen.add(key)
            walker = _walk(key)
            found = {name for name, catches in walker.raised if _filtered({name}, catches)}
            for callee, catches in walker.calls:
                found |= _filtered(result.get(callee, set()), catches)
                todo.append(callee)
            if found != result.get(key, set()):
                result[key] = found
                changed = True
    return result.get(entry, set())


def entry_of(callback: Callable[..., object]) -> tuple[Key, set[str]]:
    """A Typer callback's function key and the modules it imports (its own and its module's)."""
    function = inspect.unwrap(callback)
    name = function.__module__
    module = load(name)
    assert module is not None
    qualname = function.__qualname__.replace(".<locals>", "")
    if qualname not in module.functions:
        # Commands defined inside register(app): index the nested function by its own name.
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
        module.functions[qualname] = tree.body[0]  # type: ignore[assignment]
    body = module.functions[qualname]
    starts = {name} | {target for _, (target, _) in _imports_in(body, module, scoped=True)}
    return (name, qualname), starts


def _imports_in(
    node: ast.AST, module: Module, scoped: bool
) -> Iterator[tuple[str, tuple[str, str | None]]]:
    """(alias, (module, symbol)) of the project imports inside `node`."""
    package = module.name.rpartition(".")[0]
    for inner in ast.walk(node):
        if isinstance(inner, ast.Import):
            for alias in inner.names:
                if alias.name.startswith("mlgitops"):
                    yield alias.asname or alias.name, (alias.name, None)
        elif isinstance(inner, ast.ImportFrom) and scoped:
            source = inner.module or ""
            if inner.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - inner.level + 1])
                source = f"{base}.{inner.module}" if inner.module else base
            if not source.startswith("mlgitops"):
                continue
            for alias in inner.names:
                submodule = f"{source}.{alias.name}"
                target = (submodule, None) if module_file(submodule) else (source, alias.name)
                yield alias.asname or alias.name, target
