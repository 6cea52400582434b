#!/usr/bin/env bash
# Do two commits' default pipelines write the same bytes? Each commit is exported to
# OUT/<commit>, given the same params (the committed params.yaml, or a reduced run with
# --small), reproduced with `dvc repro` on one thread (bitwise repeatable on a CPU:
# docs/experiments.md), and the md5 of every output is compared. results/costs.csv (run
# costs: wall time, memory) differs on every run and is left out.
#
#   bash scripts/same_bytes.sh [--small] REV_A REV_B [OUT]     # default OUT: /tmp/same_bytes
#
# Prints the differing files (none: the outputs are identical) and exits 1 if any differ.
set -euo pipefail

small=0
if [[ "${1:-}" == "--small" ]]; then small=1; shift; fi
rev_a="$1"; rev_b="$2"; out="${3:-/tmp/same_bytes}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DVC_NO_ANALYTICS=1 OMP_NUM_THREADS=1

run() {  # run REV: export, set params, repro, list md5s
    local dir="$out/$1"
    rm -rf "$dir" && mkdir -p "$dir"
    git -C "$root" archive "$1" | tar -x -C "$dir"
    cd "$dir"
    rm -rf data models metrics predictions scores results plots dvclive dvc.lock
    if [[ $small == 1 ]]; then
        python - <<'PY'
import yaml
p = yaml.safe_load(open("params.yaml"))
p["sessions"] = [1, 2]
p["fetch"]["synthetic"].update(n_units=60, n_repeats=20, n_images=20)
for m in ("lstm", "transformer"):
    p["train"][m]["max_epochs"] = 4
p["fewshot"].update(shots=[1, 3], repeats=2, steps=40)
p["multisession"].update(folds=2, max_epochs=3, adapt_epochs=3)
p["neurometric"].update(units=[2, 3], subsets=2, bootstrap=100)
yaml.safe_dump(p, open("params.yaml", "w"), sort_keys=False)
PY
    fi
    git init -q . && git add -A
    git -c user.email=same@bytes -c user.name=same_bytes commit -qm "$1"
    PYTHONPATH="$dir/src" dvc repro > repro.log 2>&1 || { tail -20 repro.log; exit 1; }
    find data models metrics predictions scores results plots dvclive -type f 2>/dev/null \
        | grep -v -e '\.gitignore$' -e '^results/costs\.csv$' | sort | xargs md5sum > md5s.txt
    cd - > /dev/null
}

run "$rev_a"
run "$rev_b"
echo "$(wc -l < "$out/$rev_a/md5s.txt") outputs of $rev_a, $(wc -l < "$out/$rev_b/md5s.txt") of $rev_b"
if diff "$out/$rev_a/md5s.txt" "$out/$rev_b/md5s.txt"; then
    echo "same bytes"
else
    exit 1
fi
