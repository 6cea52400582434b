"""The code each dvc.yaml stage runs, read from the imports: what its `deps` must list.

A stage runs `python -m npdecode.stages.<module>`; every npdecode module that module
imports, directly or through others, anywhere in its body (lazy imports included), is
code the stage's results depend on, and so is the `__init__.py` of every package on the
way. `tests/test_dvc_yaml.py` checks dvc.yaml against this (its drift test); to bring dvc.yaml back in
line after a change of imports:

    python -m npdecode.devtools.code_deps --write      # rewrite the src/ deps of every stage
    python -m npdecode.devtools.code_deps              # print what is missing or stale
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from functools import cache
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[3]
SRC = PROJECT / "src"
CMD = re.compile(r"python -m (npdecode\.stages\.\w+)")


def module_file(module: str) -> Path | None:
    """The file of an npdecode module or package, or None if there is none."""
    base = SRC / module.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported(path: Path) -> set[str]:
    """npdecode modules `path` imports (absolute imports; the project uses no relative ones),
    or names as a whole string, as it does a module it runs (`python -m npdecode.x`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.fullmatch(r"npdecode(\.\w+)+", node.value) and module_file(node.value):
                found.add(node.value)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "npdecode"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "npdecode":
                continue
            for alias in node.names:  # `from pkg import mod` imports a module, else a name
                sub = f"{node.module}.{alias.name}"
                found.add(sub if module_file(sub) is not None else node.module)
    return found


def _package_data(path: Path) -> set[Path]:
    """Non-Python files beside `path` that it names in a string (package data it reads,
    e.g. `CSV_NAME = "allen_vc_sessions.csv"`): their content is code-like input too."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.fullmatch(r"[\w.-]+\.(csv|json|yaml)", node.value):
                data = path.parent / node.value
                if data.is_file():
                    found.add(data)
    return found


@cache
def closure(module: str) -> frozenset[Path]:
    """Files of `module`, of everything it imports transitively, of their packages, and the
    package data they read."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run too
        path = module_file(name)
        if path is None:
            raise ImportError(f"{name} is imported but has no file under {SRC}")
        todo += sorted(_imported(path))
    files = {module_file(m) for m in seen}
    return frozenset(files | {d for f in list(files) for d in _package_data(f)})  # type: ignore[arg-type]


def stages() -> dict[str, dict]:
    return yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]


def body(stage: dict) -> dict:
    return stage.get("do", stage)


def required_files(stage: dict) -> list[str]:
    """The src/ files stage `stage` runs, relative to the project root, sorted."""
    match = CMD.search(body(stage)["cmd"])
    if match is None:
        raise ValueError(f"not an npdecode stage command: {body(stage)['cmd']}")
    return sorted(str(p.relative_to(PROJECT)) for p in closure(match.group(1)))


def required_deps(stage: dict) -> list[str]:
    """`required_files`, with a package folder in place of its files when the stage runs
    every module in it (the top-level package excepted: one module of it is not all)."""
    files = required_files(stage)
    folders = {
        str(d.relative_to(PROJECT))
        for d in (SRC / "npdecode").iterdir()
        if d.is_dir()
        and (d / "__init__.py").exists()
        and all(str(f.relative_to(PROJECT)) in files for f in d.glob("*.py"))
    }
    kept = [f for f in files if str(Path(f).parent) not in folders]
    return sorted(kept + sorted(folders))


def declared_deps(stage: dict) -> list[str]:
    return [d for d in body(stage).get("deps", []) if isinstance(d, str) and d.startswith("src/")]


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def drift() -> dict[str, dict[str, list[str]]]:
    """Per stage: required files no dep covers (`missing`), deps covering nothing (`stale`)."""
    out = {}
    for name, stage in stages().items():
        need, have = required_files(stage), declared_deps(stage)
        missing = [p for p in need if not covered(p, have)]
        stale = [d for d in have if not any(covered(p, [d]) for p in need)]
        if missing or stale:
            out[name] = {"missing": missing, "stale": stale}
    return out


def write() -> None:
    """Rewrite every stage's src/ deps as exactly the files it runs (comments kept)."""
    from ruamel.yaml import YAML  # DVC's own YAML library: keeps comments and layout

    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 100
    rt.indent(mapping=2, sequence=4, offset=2)
    path = PROJECT / "dvc.yaml"
    doc = rt.load(path.read_text())
    for name, stage in doc["stages"].items():
        deps = body(stage)["deps"]
        others = [d for d in deps if not (isinstance(d, str) and d.startswith("src/"))]
        deps.clear()
        deps.extend(others + required_deps(stages()[name]))  # data first: the flow reads on top
    with path.open("w") as fh:
        rt.dump(doc, fh)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m npdecode.devtools.code_deps", description=__doc__
    )
    parser.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps")
    args = parser.parse_args(argv)
    if args.write:
        write()
    problems = drift()
    for name, p in problems.items():
        for kind, paths in p.items():
            for path in paths:
                print(f"{name}: {kind} {path}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
