#!/usr/bin/env bash
# Create the separate AllenSDK environment used by `fetch.source: allen`.
#
# AllenSDK 2.16.2 needs numpy < 2 and pandas 1.5, which the main environment (numpy 2,
# torch) cannot share, so it gets its own venv; the fetch stage runs
# `<venv>/bin/python -m npdecode.sources.allen_runner ...` there (params.yaml `fetch.allen.python`).
#
#   bash scripts/setup_allen_env.sh [VENV_DIR]     # default: .venv-allen
#
# Needs python3.11 (override with PYTHON=/path/to/python3.11). Safe to rerun.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$root/.venv-allen}"
python="${PYTHON:-python3.11}"

if ! command -v "$python" >/dev/null 2>&1; then
  echo "setup_allen_env: $python not found; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --upgrade pip
# The known-good pins: the same as pyproject's [allen] extra.
"$venv/bin/python" -m pip install "allensdk==2.16.2" "pyarrow<26" "hdmf<4"
# npdecode itself, without its main-environment dependencies (torch, numpy 2, dvc ...);
# only the modules written for this environment are ever imported here.
"$venv/bin/python" -m pip install --no-deps -e "$root"

# Smoke test: AllenSDK's project cache and our side of the fetch import cleanly.
"$venv/bin/python" -c "import allensdk, numpy, pandas, npdecode.sources.allen_runner; \
print('AllenSDK', allensdk.__version__, '| numpy', numpy.__version__, '| pandas', pandas.__version__)"
echo "setup_allen_env: ready: $venv/bin/python (params.yaml fetch.allen.python)"
