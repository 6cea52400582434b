"""Sharing data through a DVC remote, and the SLURM job scripts: real git, DVC and bash runs.

The remote of these tests is a temporary folder standing in for /proj, set the way a user
overrides it (`dvc remote modify --local proj url ...`); sbatch is replaced by a stub.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .helpers import (
    PROJECT,
    TRACE_ENV,
    command_env,
    read_json,
    sh,
    traced_imports,
)

PROJ_STORE = Path("/proj/STOR/pipiras/Neuropixel")
COST_KEYS = ("wall_time_s", "peak_rss_mb", "peak_gpu_mb")  # measured, not reproducible
# stages with cached outputs: a fresh clone without the DVC cache must run them again
STAGES_1 = ("fetch@1", "bin@1", "clean@1", "split@1", "train_logreg@1")
# stages whose only outputs are kept in git: the regenerated inputs hash the same (the
# synthetic session is byte-reproducible, and so is every default model's training on a
# CPU, so the report's metrics and predictions too), so DVC rightly skips them
GIT_ONLY_1 = ("reference@1", "fewshot_logreg@1", "neurometric@1", "report")
no_proj = pytest.mark.skipif(PROJ_STORE.exists(), reason="this machine has the real /proj")


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    path = tmp_path / "remote"
    path.mkdir()
    return path


def use_remote(project: Path, remote: Path) -> None:
    """Point the committed `proj` remote at `remote` and make it the default, for this clone
    only (.dvc/config.local), as the README's one-time setup does."""
    sh(["dvc", "remote", "modify", "--local", "proj", "url", str(remote)], project)
    sh(["dvc", "remote", "default", "--local", "proj"], project)


def scientific(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in COST_KEYS}


def stub_sbatch(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An `sbatch` that records its arguments, one per line, a blank line after each call."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "sbatch-calls.txt"
    bin_dir.mkdir()
    stub = bin_dir / "sbatch"
    stub.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" "" >> {calls}\n')
    stub.chmod(0o755)
    env = command_env()
    return {"PATH": f"{bin_dir}:{env['PATH']}"}, calls


# --- the committed DVC config ------------------------------------------------------------


def test_committed_config_names_proj_remote_and_group_cache() -> None:
    out = sh(["dvc", "config", "--project", "--list"], PROJECT).stdout
    config = dict(line.split("=", 1) for line in out.splitlines())
    # named, but not the default: a plain `dvc push` must not create /proj/... on a laptop
    assert "core.remote" not in config
    assert config["remote.proj.url"] == str(PROJ_STORE / "dvc-store")
    assert config["cache.shared"] == "group"
    assert config["cache.type"] == "reflink,hardlink,symlink,copy"
    # a shared cache.dir lives in each cluster user's config.local: it must not break laptops
    assert "cache.dir" not in config


@no_proj
def test_fresh_clone_without_proj_reproduces_same_metrics_but_pull_fails(
    tmp_path: Path, reproduced: Path
) -> None:
    origin = reproduced
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(origin), str(clone)], tmp_path)

    for command in ("pull", "push"):  # no default remote: nothing is created under /proj
        proc = sh(["dvc", command], clone, check=False)
        assert proc.returncode != 0
        # DVC words it per command: push "no remote specified … dvc remote default", pull
        # "No remote provided and no default remote set"
        assert "no remote specified" in proc.stderr or "no default remote set" in proc.stderr
        assert not PROJ_STORE.exists()

    out = sh(["dvc", "repro"], clone).stdout
    assert all(f"Running stage '{stage}'" in out for stage in STAGES_1), out
    assert all(f"Stage '{stage}' didn't change" in out for stage in GIT_ONLY_1), out
    for rel in ("metrics/logreg/1.json", "metrics/reference/1.json"):
        assert scientific(read_json(clone / rel)) == scientific(read_json(origin / rel)), rel


def test_push_then_fresh_clone_pulls_everything_and_has_nothing_to_reproduce(
    project: Path, remote: Path, tmp_path: Path
) -> None:
    use_remote(project, remote)
    sh(["dvc", "push"], project)
    assert "in sync" in sh(["dvc", "status", "--cloud"], project).stdout
    assert any((remote / "files" / "md5").rglob("*"))

    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    assert not (clone / "models/logreg/1.pt").exists()
    use_remote(clone, remote)
    sh(["dvc", "pull"], clone)
    for rel in ("models/logreg/1.pt", "data/raw/session_1/session_1.nwb", "data/split/1/test.npz"):
        assert (clone / rel).read_bytes() == (project / rel).read_bytes(), rel

    assert "Data and pipelines are up to date" in sh(["dvc", "status"], clone).stdout
    out = sh(["dvc", "repro"], clone).stdout
    assert "Running stage" not in out
    assert all(f"Stage '{stage}' didn't change" in out for stage in STAGES_1), out
    assert json.loads(sh(["dvc", "metrics", "diff", "--json"], clone).stdout) == {}


# --- slurm/ ------------------------------------------------------------------------------


def test_slurm_scripts_parse_and_ask_for_an_a100() -> None:
    scripts = sorted(PROJECT.glob("slurm/*.sh")) + sorted(PROJECT.glob("slurm/*.sbatch"))
    assert {p.name for p in scripts} >= {"submit_sessions.sh", "exp.sbatch"}
    for script in scripts:
        sh(["bash", "-n", str(script)], PROJECT)
    directives = [
        line.split(None, 1)[1]
        for line in (PROJECT / "slurm/exp.sbatch").read_text().splitlines()
        if line.startswith("#SBATCH ")
    ]
    assert "--gres=gpu:a100:1" in directives and "--mem=64G" in directives
    assert any(d.startswith("--time=") for d in directives)


def test_submit_dry_run_prints_every_job_and_submits_nothing(project: Path, tmp_path: Path) -> None:
    env, calls = stub_sbatch(tmp_path)
    head = sh(["git", "rev-parse", "HEAD"], project).stdout.strip()
    out = sh(
        [
            "bash",
            "slurm/submit_sessions.sh",
            "--dry-run",
            "3",
            "5",
            "--",
            "-S",
            "train.logreg.C=0.1",
        ],
        project,
        env=env,
    ).stdout
    assert not calls.exists() and not (project / "slurm/logs").exists()
    for sid in (3, 5):
        assert (
            f"sbatch --job-name=npdecode-s{sid} "
            f"--export=ALL,NPDECODE_REPO={project},NPDECODE_COMMIT={head} "
            f"{project}/slurm/exp.sbatch -S 'sessions=[{sid}]' -S train.logreg.C=0.1"
        ) in out
        assert f"+ git clone --quiet --no-checkout {project} /" in out
        assert f"/npdecode-JOBID checkout --quiet --detach {head}" in out
        assert (
            f"+ dvc exp run --pull --name npdecode-s{sid}-JOBID "
            f"-S 'sessions=[{sid}]' -S train.logreg.C=0.1"
        ) in out
    for command in (
        "+ dvc cache dir --local " + str(project / ".dvc/cache"),
        "+ dvc fetch --run-cache --type metrics",
        "+ dvc exp push --quiet --no-cache origin npdecode-s3-JOBID",
        "+ dvc push --run-cache",
    ):
        assert command in out
    # job order: clone, pull, run, push
    assert out.index("git clone") < out.index("dvc fetch") < out.index("dvc exp run")
    assert out.index("dvc exp run") < out.index("dvc exp push") < out.index("dvc push --run")

    # without sessions on the command line: those of params.yaml
    out = sh(["bash", "slurm/submit_sessions.sh", "--dry-run"], project, env=env).stdout
    submitted = [line for line in out.splitlines() if line.startswith("sbatch ")]
    assert len(submitted) == 1 and submitted[0].endswith("-S 'sessions=[1]'")


def test_submit_calls_sbatch_once_per_session_at_the_current_commit(
    project: Path, tmp_path: Path
) -> None:
    env, calls = stub_sbatch(tmp_path)
    env["SBATCH_ARGS"] = "--partition=gpu --time=01:00:00"
    head = sh(["git", "rev-parse", "HEAD"], project).stdout.strip()
    sh(["bash", "slurm/submit_sessions.sh", "1", "2"], project, env=env)
    jobs = [call.splitlines() for call in calls.read_text().split("\n\n") if call]
    assert len(jobs) == 2
    for sid, args in zip((1, 2), jobs, strict=True):
        assert args == [
            f"--job-name=npdecode-s{sid}",
            f"--export=ALL,NPDECODE_REPO={project},NPDECODE_COMMIT={head}",
            "--partition=gpu",
            "--time=01:00:00",
            f"{project}/slurm/exp.sbatch",
            "-S",
            f"sessions=[{sid}]",
        ]
    assert (project / "slurm/logs").is_dir()  # where #SBATCH --output writes


def test_submit_refuses_uncommitted_code_or_params(project: Path, tmp_path: Path) -> None:
    env, calls = stub_sbatch(tmp_path)
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("C: 0.01", "C: 0.5"))
    proc = sh(["bash", "slurm/submit_sessions.sh", "1"], project, check=False, env=env)
    assert proc.returncode == 2
    assert "uncommitted changes" in proc.stderr and "params.yaml" in proc.stderr
    assert not calls.exists()


def run_job(project: Path, tmp_path: Path, job_id: int, *args: str, **env: str):
    """Run slurm/exp.sbatch as SLURM would start it, in `project`, with a traced import."""
    job_env = {
        "SLURM_JOB_ID": str(job_id),
        "SLURM_JOB_NAME": "npdecode-test",
        "NPDECODE_SCRATCH": str(tmp_path / "scratch"),
        TRACE_ENV: str(tmp_path / f"imports-{job_id}.txt"),
        **env,
    }
    return subprocess.run(
        ["bash", "slurm/exp.sbatch", *args],
        cwd=project,
        env=command_env(job_env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_job_runs_in_its_own_clone_and_pushes_results_back(
    project: Path, remote: Path, tmp_path: Path
) -> None:
    use_remote(project, remote)
    base = read_json(project / "metrics/logreg/1.json")
    job = run_job(project, tmp_path, 101, "-S", "train.logreg.C=0.1")
    assert job.returncode == 0, job.stdout + job.stderr
    clone = tmp_path / "scratch" / "npdecode-101"
    assert not clone.exists()  # removed on success
    imported = traced_imports(tmp_path / "imports-101.txt")
    assert imported and all(clone / "src" in p.parents for p in imported), imported
    assert "Running stage 'train_logreg@1'" in job.stdout
    assert "Running stage 'fetch@1'" not in job.stdout  # data stages came from the cache

    # the experiment is back in the workspace repo, the workspace itself untouched
    assert read_json(project / "metrics/logreg/1.json") == base
    show = json.loads(sh(["dvc", "exp", "show", "--json"], project).stdout)
    exps = {e["name"]: e["revs"][0]["data"] for b in show for e in b.get("experiments") or []}
    assert set(exps) == {"npdecode-test-101"}
    data = exps["npdecode-test-101"]
    assert data["params"]["params.yaml"]["data"]["train"]["logreg"]["C"] == 0.1
    acc = data["metrics"]["scores/logreg_1.json"]["data"]["acc"]["logreg"]["1"]
    assert acc != base["test"]["accuracy"]

    # its outputs are in the shared cache and on the remote, run cache included
    sh(["dvc", "exp", "apply", "npdecode-test-101"], project)
    assert read_json(project / "metrics/logreg/1.json")["test"]["accuracy"] == acc
    assert "in sync" in sh(["dvc", "status", "--cloud"], project).stdout
    assert any((remote / "runs").rglob("*"))


@no_proj
def test_job_stops_before_work_when_the_remote_is_unreachable(
    project: Path, tmp_path: Path
) -> None:
    job = run_job(project, tmp_path, 102, "-S", "train.logreg.C=0.1")
    assert job.returncode == 2
    assert "no default DVC remote" in job.stderr
    assert "dvc remote default --local proj" in job.stderr
    sh(["dvc", "remote", "default", "--local", "proj"], project)  # set up, but no /proj here
    job = run_job(project, tmp_path, 103, "-S", "train.logreg.C=0.1")
    assert job.returncode == 2
    assert "DVC remote 'proj' (/proj/STOR/pipiras/Neuropixel/dvc-store) is not reachable" in (
        job.stderr
    )
    assert "Running stage" not in job.stdout
    for job_id in (102, 103):
        assert not (tmp_path / f"scratch/npdecode-{job_id}").exists()  # checked before cloning
    assert not PROJ_STORE.exists()


@pytest.mark.slow  # ~4 min: two jobs, each the whole pipeline of a new session
def test_second_job_for_a_session_restores_its_data_from_the_remote(
    project: Path, remote: Path, tmp_path: Path
) -> None:
    use_remote(project, remote)
    first = run_job(project, tmp_path, 201, "-S", "sessions=[2]")
    assert first.returncode == 0, first.stderr
    assert "Running stage 'fetch@2'" in first.stdout
    # the lab adopts the new session: its lock entries (and, on the remote, its data) are shared
    sh(["dvc", "exp", "apply", "npdecode-test-201"], project)
    sh(["git", "add", "-A"], project)  # new metrics/reports are git files (cache: false)
    sh(["git", "commit", "-qm", "add session 2"], project)

    # another lab member: own clone of the repo, own empty cache, same remote
    other = tmp_path / "other"
    sh(["git", "clone", "-q", str(project), str(other)], tmp_path)
    use_remote(other, remote)
    second = run_job(other, tmp_path, 202, "-S", "train.logreg.C=0.5")
    assert second.returncode == 0, second.stderr
    # the raw NWB comes from the remote: nothing is generated or downloaded again
    assert "Running stage 'fetch@2'" not in second.stdout
    assert "Running stage 'split@2'" not in second.stdout
    assert "Running stage 'train_logreg@2'" in second.stdout
