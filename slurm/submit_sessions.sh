#!/usr/bin/env bash
# Submit one SLURM job per session; each runs slurm/exp.sbatch, i.e.
#   dvc exp run -S 'sessions=[<id>]' [DVC_EXP_RUN_ARGS...]
# in its own clone of this repo at the current commit (docs/cluster.md, "Run on the cluster").
#
#   slurm/submit_sessions.sh [--dry-run] [SESSION ...] [-- DVC_EXP_RUN_ARGS ...]
#
#   slurm/submit_sessions.sh                           # every session in params.yaml
#   slurm/submit_sessions.sh 715093703 719161530       # these sessions
#   slurm/submit_sessions.sh -- -S train.logreg.C=0.1  # extra overrides / stage targets
#   slurm/submit_sessions.sh --dry-run                 # print sbatch and job commands only
#
# Environment: SBATCH_ARGS extra sbatch options for every job, e.g.
#   SBATCH_ARGS="--partition=gpu --time=08:00:00"; DRY_RUN=1 is the same as --dry-run;
#   NPDECODE_ACTIVATE and the rest are read by the jobs (see slurm/exp.sbatch).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dry_run=${DRY_RUN:-0}

die() {
    echo "submit_sessions: error: $*" >&2
    exit 2
}

# Print a command quoted so that it can be pasted into a shell (as slurm/exp.sbatch does).
show() {
    local line="" arg
    for arg in "$@"; do
        if [[ $arg =~ ^[-A-Za-z0-9_./:=@,+%]+$ ]]; then
            line+=" $arg"
        else
            line+=" '${arg//\'/\'\\\'\'}'"
        fi
    done
    echo "${line# }"
}

sessions=()
extra=()
while (($#)); do
    case $1 in
        --dry-run) dry_run=1 ;;
        -h | --help) sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        -*) die "unknown option $1 (dvc exp run options go after --)" ;;
        *) sessions+=("$1") ;;
    esac
    shift
done

root=$(git rev-parse --show-toplevel) || die "run me inside the npdecode repo"
cd "$root"
if ((${#sessions[@]} == 0)); then
    listed=$(python -c 'import yaml; print(*yaml.safe_load(open("params.yaml"))["sessions"])') ||
        die "cannot read 'sessions' from $root/params.yaml"
    read -r -a sessions <<<"$listed"
fi
((${#sessions[@]})) || die "no sessions: give some, or list them in params.yaml"
for sid in "${sessions[@]}"; do
    [[ $sid =~ ^[0-9]+$ ]] || die "session id '$sid' is not an integer"
done
# Jobs run a commit, not your working tree: refuse to silently leave edits out.
dirty=$(git status --porcelain --untracked-files=no -- src dvc.yaml params.yaml)
[[ -z $dirty ]] || die "uncommitted changes the jobs would not see; commit them first:
$dirty"
commit=$(git rev-parse HEAD)
read -r -a sbatch_args <<<"${SBATCH_ARGS:-}"
[[ $dry_run == 1 ]] || mkdir -p slurm/logs  # sbatch --output needs the folder

for sid in "${sessions[@]}"; do
    job_args=(-S "sessions=[$sid]" "${extra[@]}")
    cmd=(sbatch "--job-name=npdecode-s$sid"
        "--export=ALL,NPDECODE_REPO=$root,NPDECODE_COMMIT=$commit"
        "${sbatch_args[@]}" "$here/exp.sbatch" "${job_args[@]}")
    if [[ $dry_run != 1 ]]; then
        "${cmd[@]}"
        continue
    fi
    show "${cmd[@]}"
    DRY_RUN=1 NPDECODE_REPO=$root NPDECODE_COMMIT=$commit SLURM_JOB_ID=JOBID \
        SLURM_JOB_NAME="npdecode-s$sid" bash "$here/exp.sbatch" "${job_args[@]}" 2>&1 |
        sed 's/^/    /'
done
