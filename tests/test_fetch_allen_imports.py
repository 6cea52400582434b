"""The modules that run in the AllenSDK environment import only what that environment has.

That environment is numpy < 2, pandas 1.5, pynwb 2.8 and AllenSDK: an import of torch,
dvc, pynwb-4-only names or a main-environment npdecode module there would break the
fetch stage only on the cluster. This checks the import graph statically (no AllenSDK
needed); the `allen`-marked tests run the modules there for real.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "npdecode"
ALLEN_SIDE = {"allen", "download", "nwbmeta", "rawsession", "io", "paths", "errors"}
THIRD_PARTY = {"allensdk", "numpy", "pandas", "h5py", "requests", "tqdm"}


def imports(module: str) -> set[str]:
    """Top-level names imported by `src/npdecode/<module>.py` (npdecode.x as 'npdecode.x')."""
    tree = ast.parse((SRC / f"{module}.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "npdecode":
                names |= {f"npdecode.{a.name}" for a in node.names}
            else:
                names.add(node.module)
    return names


@pytest.mark.parametrize("module", sorted(ALLEN_SIDE))
def test_allen_side_imports_only_what_the_allen_env_has(module: str) -> None:
    for name in imports(module):
        top = name.split(".")[0]
        if top == "npdecode":
            assert name.split(".")[1] in ALLEN_SIDE, f"{module} imports {name}"
        elif top != "__future__" and top not in sys.stdlib_module_names:
            assert top in THIRD_PARTY, f"{module} imports {name}"


def test_only_allen_imports_allensdk() -> None:
    users = {
        p.stem
        for p in SRC.rglob("*.py")
        if any(n.startswith("allensdk") for n in imports(str(p.relative_to(SRC).with_suffix(""))))
    }
    assert users == {"allen"}
