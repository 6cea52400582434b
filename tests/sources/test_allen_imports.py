"""The code that runs in the AllenSDK environment imports only what that environment has.

That environment is numpy < 2, pandas 1.5, pynwb 2.8 and AllenSDK: an import of torch,
dvc, pynwb-4-only names or a main-environment npdecode module there would break the
fetch stage only on the cluster. The modules concerned are found, not listed: everything
`npdecode.sources.allen_runner` imports, transitively. This checks them statically (no
AllenSDK needed); the `allen`-marked tests run them there for real.
"""

from __future__ import annotations

import ast
import sys

from npdecode.devtools.code_deps import PROJECT, SRC, closure, module_file


def allen_env_packages() -> set[str]:
    """`ALLEN_ENV_PACKAGES` of the runner, read from its source (allensdk is not here)."""
    tree = ast.parse(module_file("npdecode.sources.allen_runner").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == "ALLEN_ENV_PACKAGES" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    raise AssertionError("npdecode.sources.allen_runner defines no ALLEN_ENV_PACKAGES")


def third_party(path) -> set[str]:
    """Top-level names of the non-npdecode packages a file imports (anywhere in it)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in ("npdecode", "__future__")} - set(sys.stdlib_module_names)


def test_allen_side_imports_only_what_the_allen_env_has() -> None:
    side = closure("npdecode.sources.allen_runner")
    # the runner's own helpers, and nothing of the main environment's model code
    names = {str(p.relative_to(SRC)) for p in side}
    assert "npdecode/sources/download.py" in names and "npdecode/nwb/read.py" in names
    for path in side:
        bad = third_party(path) - allen_env_packages()
        assert not bad, f"{path.relative_to(PROJECT)} imports {sorted(bad)}"


def test_only_the_runner_imports_allensdk() -> None:
    users = {
        str(p.relative_to(SRC))
        for p in (SRC / "npdecode").rglob("*.py")
        if "allensdk" in third_party(p)
    }
    assert users == {"npdecode/sources/allen_runner.py"}
