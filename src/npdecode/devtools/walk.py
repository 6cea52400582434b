"""Follow one parameter from a stage through the package's calls, and count the stops.

    python -m npdecode.devtools.walk npdecode.stages.fewshot:main:params [--src DIR]

From `module:function:param`, every call in the function's body that passes the parameter
(the name itself, an attribute of it such as `params.fewshot`, an expression built from
it, or a local name assigned from one: `fs = params.fewshot`) to an npdecode function is followed into that function, tracking the parameter it
lands in; each function is visited once, depth first in the order the calls are written.
Printed: the functions reached, the stays (consecutive visits to one module merged), the
modules and how often each is entered, the returns (a stay in a module left before) and
the climbs back (a call into a module still on the call stack, i.e. up again), each with
its call stack. Read from the source text (ast); nothing is run.
"""

from __future__ import annotations

import argparse
import ast
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[2]


@dataclass
class Walk:
    """What a walk found: the functions in the order first reached, and the climbs back."""

    order: list[str] = field(default_factory=list)  # "module:function", first visits
    climbs: list[tuple[str, ...]] = field(default_factory=list)  # stacks that re-enter a module

    def stays(self) -> list[str]:
        """The modules of `order`, consecutive repeats merged: one stay per entry."""
        mods = [f.split(":")[0] for f in self.order]
        return [m for i, m in enumerate(mods) if i == 0 or mods[i - 1] != m]


class Module:
    """One module's functions and the names it imports from npdecode."""

    def __init__(self, name: str, src: Path) -> None:
        path = src / (name.replace(".", "/") + ".py")
        if not path.is_file():
            path = src / name.replace(".", "/") / "__init__.py"
        tree = ast.parse(path.read_text(), str(path))
        self.name = name
        self.functions = {
            n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        self.names: dict[str, tuple[str, str]] = {}  # local name -> (module, function)
        self.modules: dict[str, str] = {}  # local name -> module
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("npdecode")
            ):
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    if _exists(sub, src):
                        self.modules[a.asname or a.name] = sub
                    else:
                        self.names[a.asname or a.name] = (node.module, a.name)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("npdecode"):
                        self.modules[a.asname or a.name] = a.name


def _exists(module: str, src: Path) -> bool:
    base = src / module.replace(".", "/")
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _uses(node: ast.AST, names: set[str]) -> bool:
    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


def _aliases(fn: ast.AST, name: str) -> set[str]:
    """`name` and the local names assigned from it (`fs = params.fewshot`), transitively."""
    names = {name}
    assigns = [n for n in ast.walk(fn) if isinstance(n, ast.Assign)]
    grew = True
    while grew:
        grew = False
        for a in assigns:
            if _uses(a.value, names):
                for t in a.targets:
                    for n in ast.walk(t):
                        if isinstance(n, ast.Name) and n.id not in names:
                            names.add(n.id)
                            grew = True
    return names


def _target(call: ast.Call, mod: Module) -> tuple[str, str] | None:
    f = call.func
    if isinstance(f, ast.Name):
        if f.id in mod.functions:
            return mod.name, f.id
        return mod.names.get(f.id)
    if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in mod.modules:
        return mod.modules[f.value.id], f.attr
    return None


def _passes(mod: Module, fn: str, tracked: str, get: Any) -> list[tuple[tuple[str, str], str]]:
    """((module, function), parameter) of every call in `fn` that passes `tracked`, in the
    order the calls are written."""
    node = mod.functions[fn]
    tracked_names = _aliases(node, tracked)
    found = []
    calls = sorted(
        (n for n in ast.walk(node) if isinstance(n, ast.Call)),
        key=lambda c: (c.lineno, c.col_offset),
    )
    for call in calls:
        target = _target(call, mod)
        callee = get(target[0]) if target is not None else None
        if target is None or callee is None or target[1] not in callee.functions:
            continue
        args = callee.functions[target[1]].args
        names = [a.arg for a in args.posonlyargs + args.args]
        found += [
            (target, names[i])
            for i, arg in enumerate(call.args)
            if i < len(names) and _uses(arg, tracked_names)
        ]
        found += [
            (target, kw.arg) for kw in call.keywords if kw.arg and _uses(kw.value, tracked_names)
        ]
    return found


def walk(start: str, src: Path = SRC) -> Walk:
    """Walk `module:function:param` (see the module docstring)."""
    module, function, param = start.split(":")
    cache: dict[str, Module] = {}
    out = Walk()

    def get(name: str) -> Module | None:
        if name not in cache:
            if not _exists(name, src):
                return None
            cache[name] = Module(name, src)
        return cache[name]

    def visit(mod_name: str, fn: str, tracked: str, stack: tuple[str, ...]) -> None:
        mod = get(mod_name)
        here = f"{mod_name}:{fn}"
        if mod is None or fn not in mod.functions:
            return
        modules = [p.split(":")[0] for p in stack]
        if modules and modules[-1] != mod_name and mod_name in modules:
            out.climbs.append((*stack, here))  # back into a module still on the call stack
        if here in out.order:
            return
        out.order.append(here)
        for target, param in _passes(mod, fn, tracked, get):
            visit(*target, param, (*stack, here))

    visit(module, function, param, ())
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m npdecode.devtools.walk", description=__doc__)
    parser.add_argument(
        "start", nargs="+", help="module:function:param, e.g. npdecode.stages.fewshot:main:params"
    )
    parser.add_argument("--src", type=Path, default=SRC, help="the src/ folder to read")
    args = parser.parse_args(argv)
    for start in args.start:
        w = walk(start, args.src)
        stays = w.stays()
        entered = Counter(stays)
        returns = len(stays) - len(entered)
        print(
            f"{start}: {len(w.order)} functions, {len(stays)} stays in {len(entered)} modules, "
            f"{returns} returns to a module left before, {len(w.climbs)} re-entries of a module on the call stack"
        )
        for module, n in entered.most_common():
            print(f"  entered {n:3d}x  {module}")
        for stack in w.climbs:
            print("  climb back: " + " -> ".join(stack))


if __name__ == "__main__":
    main()
