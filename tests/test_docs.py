"""The README and docs/ agree with the code (issue 25, item 3).

Every section a message, comment or page names (`docs/allen.md, "Real Allen sessions"`,
`README: ...`) exists; every relative link resolves; every command in a bash block of the
README and docs/ either runs here for real (`--help` of each npdecode command) or resolves:
its module, script or file exists, each `--flag` it passes is one the script defines, each
`-S key=value` names a param and each DVC target a stage of dvc.yaml. Commands that need the
cluster, a GPU, the network or the AllenSDK environment are checked the same way but not run.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import yaml

from npdecode.params import Params, as_dict

from .helpers import PROJECT, command_env

PAGES = [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]
SOURCES = [
    *PAGES,
    PROJECT / "params.yaml",
    PROJECT / "dvc.yaml",
    PROJECT / ".ci" / "run",
    PROJECT / ".dvc" / "config",
    *sorted((PROJECT / "src").rglob("*.py")),
    *sorted((PROJECT / "slurm").glob("*")),
    *sorted((PROJECT / "bench").glob("*.py")),
    *sorted((PROJECT / "scripts").glob("*")),
]
# `README, "Section"`, `docs/x.md, "Section"`, `README: Section)`, `README section "Section"`
SECTION_REF = re.compile(
    r"\b(README|docs/[\w-]+\.md)(?:,| section|:)\s*(?:\"([^\"\n]+)\"|([A-Z][^)\"\n]+)\))"
)
LINK = re.compile(r"\]\(([^)\s]+)\)")
PLACEHOLDER = re.compile(r"<[^>]*>|\.\.\.")
NOT_RUN = ("slurm", "sbatch", "gpu_check", "setup_allen_env", "-m allen", "--source allen")


def headings(page: Path) -> set[str]:
    """Every heading of a markdown page, without its #s (and without backticks)."""
    lines = page.read_text().splitlines()
    found = {line.lstrip("#").strip() for line in lines if re.match(r"#{1,6} ", line)}
    return found | {h.replace("`", "") for h in found}


def section_refs() -> list[tuple[str, str, str]]:
    """(file that names it, page, section) for every section reference in the sources."""
    refs = []
    for path in SOURCES:
        if not path.is_file():
            continue
        for m in SECTION_REF.finditer(path.read_text(errors="replace")):
            page = "README.md" if m.group(1) == "README" else m.group(1)
            refs.append((str(path.relative_to(PROJECT)), page, m.group(2) or m.group(3)))
    return refs


def test_every_named_section_exists() -> None:
    refs = section_refs()
    assert len(refs) >= 5  # the pattern still finds the references
    missing = [r for r in refs if r[2].strip() not in headings(PROJECT / r[1])]
    assert missing == [], missing


def test_the_section_pattern_catches_a_wrong_name(tmp_path: Path) -> None:
    text = 'see README, "Real Allen sessions" and (README: ST-GAT) and docs/cost.md, "ST-GAT"'
    found = [(m.group(1), m.group(2) or m.group(3)) for m in SECTION_REF.finditer(text)]
    assert found == [
        ("README", "Real Allen sessions"),
        ("README", "ST-GAT"),
        ("docs/cost.md", "ST-GAT"),
    ]
    assert "Real Allen sessions" not in headings(PROJECT / "README.md")


def test_every_relative_link_resolves() -> None:
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if "://" in target or target.startswith(("#", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            if not (page.parent / path).exists():
                broken.append((page.name, target))
    assert broken == [], broken


def bash_commands(page: Path) -> list[str]:
    """The commands of a page's ```bash blocks: continuations joined, comments dropped."""
    commands, block, lines = [], None, page.read_text().splitlines()
    for line in lines:
        if line.startswith("```"):
            block = line[3:].strip() if block is None else None
            continue
        if block in ("bash", "sh"):
            commands.append(line)
    joined = "\n".join(commands).replace("\\\n", " ")
    out, variables = [], {}
    for line in joined.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        assignment = re.fullmatch(r"([A-Z_]+)=(\"[^\"]*\"|\S*)", line)
        if assignment:  # NAME="..." on a line of its own: used below as $NAME
            variables[assignment.group(1)] = assignment.group(2).strip('"')
        for name, value in variables.items():
            line = line.replace(f"${name}", value)
        if line:
            out.append(line)
    return out


def simple_commands(line: str) -> list[list[str]]:
    """`a && b | c; d > f` as the argument lists of its commands, leading VAR=x and `nice` off."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    out: list[list[str]] = [[]]
    skip = False
    for token in lexer:
        if token in ("&&", "||", "|", ";"):
            out.append([])
        elif token in (">", ">>", "<"):
            skip = True  # the redirection's file
        elif skip:
            skip = False
        else:
            out[-1].append(token)
    commands = []
    for words in out:
        while words and (re.match(r"^\w+=", words[0]) or words[0] in ("nice", "env", "time")):
            words = words[3:] if words[:2] == ["nice", "-n"] else words[1:]
        if words:
            commands.append(words)
    return commands


@cache
def stage_names() -> set[str]:
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    return set(stages)


@cache
def param_keys() -> set[str]:
    keys: set[str] = set()

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            keys.add(prefix + k)
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")

    walk(as_dict(Params()), "")
    return keys


def flags_of(script: Path) -> set[str]:
    return set(re.findall(r"[\"'](--[\w-]+)[\"']", script.read_text()))


def check_words(words: list[str]) -> list[str]:
    """What is wrong with one simple command (empty when it resolves)."""
    prog, args = words[0], words[1:]
    problems: list[str] = []
    if prog in ("python", "python3", "python3.11") and args[:1] == ["-m"]:
        module = args[1]
        if module.startswith("npdecode") and importlib.util.find_spec(module) is None:
            problems.append(f"no module {module}")
        if module == "pytest":
            problems += [f"no {a}" for a in args[2:] if a.startswith("tests") and not exists(a)]
    elif prog in ("python", "python3", "bash") and args and args[0].endswith((".py", ".sh")):
        script = PROJECT / args[0]
        if not script.exists():
            return [f"no file {args[0]}"]
        if script.suffix == ".py":
            defined = flags_of(script)
            problems += [
                f"{args[0]}: no option {a}"
                for a in args
                if a.startswith("--") and a.split("=")[0] not in defined
            ]
    elif prog == "dvc" and args[:2] in (["exp", "run"], ["repro"]) or args[:1] == ["repro"]:
        problems += dvc_run_problems(args[2:] if args[0] == "exp" else args[1:])
    return problems


def exists(path: str) -> bool:
    return (PROJECT / path.split("::")[0]).exists()


def dvc_run_problems(args: list[str]) -> list[str]:
    problems, i = [], 0
    with_value = {"-S", "--set-param", "-n", "--name", "-j", "--jobs", "--rev"}
    while i < len(args):
        arg = args[i]
        if arg in ("-S", "--set-param"):
            key = args[i + 1].split("=", 1)[0].lstrip("+~")
            if key not in param_keys():
                problems.append(f"-S {key}: no such param")
        elif not arg.startswith("-") and not PLACEHOLDER.search(arg):
            if arg.split("@")[0] not in stage_names():
                problems.append(f"dvc target {arg}: no such stage in dvc.yaml")
        i += 2 if arg in with_value else 1
    return problems


def all_commands() -> list[tuple[str, str]]:
    return [(page.name, line) for page in PAGES for line in bash_commands(page)]


def test_every_documented_command_resolves() -> None:
    commands = all_commands()
    assert len(commands) > 40  # the blocks are still found
    problems = []
    for page, line in commands:
        for words in simple_commands(line):
            problems += [f"{page}: `{line}`: {p}" for p in check_words(words)]
    assert problems == [], "\n".join(problems)


def test_the_command_check_catches_stale_commands() -> None:
    assert check_words(["dvc", "repro", "train_nothing"]) != []
    assert check_words(["dvc", "exp", "run", "-S", "train.lstm.hiden=3"]) != []
    assert check_words(["python", "-m", "npdecode.stages.nothing"]) != []
    assert check_words(["python", "bench/bench_pipeline.py", "--no-such-flag"]) != []
    assert check_words(["dvc", "repro", "train_lstm@1"]) == []


@cache
def npdecode_modules() -> list[str]:
    """The npdecode modules the docs tell a user to run (`python -m npdecode...`)."""
    found = set()
    for _page, line in all_commands():
        if any(word in line for word in NOT_RUN):
            continue
        for words in simple_commands(line):
            if words[:2] == ["python", "-m"] and words[2].startswith("npdecode"):
                found.add(words[2])
    for page in PAGES:  # named in the text: `python -m npdecode.formats.costs`
        found |= set(re.findall(r"python\s+-m\s+(npdecode(?:\.\w+)+)(?![\w.<])", page.read_text()))
    return sorted(found)


def test_documented_npdecode_commands_answer_help() -> None:
    modules = npdecode_modules()
    assert "npdecode.formats.costs" in modules
    for module in modules:
        proc = subprocess.run(
            [sys.executable, "-m", module, "--help"],
            cwd=PROJECT,
            env=command_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0 and "usage" in proc.stdout.lower(), (module, proc.stderr)


ARTIFACT = re.compile(
    r"(?<![\w/.])((?:data|models|metrics|results|plots|scores|predictions)/[\w./<>@*-]*[\w>])"
)


@cache
def out_paths() -> list[str]:
    """Every output path of dvc.yaml for session 1 (optional models: stgat, poyo; the
    optional shared decoder's foreach item: poyo)."""
    paths = []
    for stage in yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"].values():
        body = stage.get("do", stage)
        for kind in ("outs", "metrics", "plots"):
            for out in body.get(kind, []):
                path = next(iter(out)) if isinstance(out, dict) else out
                for model in ("stgat", "poyo"):
                    named = path.replace("${item.model}", model)
                    paths.append(re.sub(r"\$\{[^}]*\}", "1", named))
                    paths.append(named.replace("${item}", "poyo"))
    return paths


def names_an_output(path: str) -> bool:
    """`path` is an output, inside an output folder, or a folder holding outputs; a path
    cut at a wildcard (`scores/fewshot_`) only has to start one."""
    whole = not path.endswith("\0")
    path = path.rstrip("\0")
    for out in out_paths():
        if path == out or path.startswith(out + "/") or out.startswith(path + "/"):
            return True
        if not whole and out.startswith(path):
            return True
    return False


# written by a command the docs show, not by a stage (`python -m npdecode.adapt ... --out`)
COMMAND_OUTPUTS = ("models/adapted/",)


def ignored(path: str) -> bool:
    """Caches and records that are git-ignored on purpose (.gitignore), and what a
    documented command writes: not stage outputs."""
    if path.startswith(COMMAND_OUTPUTS):
        return True
    lines = (PROJECT / ".gitignore").read_text().splitlines()
    globs = [line.lstrip("/") for line in lines if line.startswith("/data/")]
    return any(Path(path).match(g) or path.startswith(g.rstrip("*")) for g in globs)


def artifact_paths(page: Path) -> list[str]:
    """Artifact paths a page names in code (blocks and `inline`): session ids become 1, and
    a path is cut at a wildcard or other placeholder (marked by a trailing NUL)."""
    text = page.read_text()
    code = re.findall(r"```.*?```|`[^`\n]+`", text, re.S)
    found = []
    for chunk in code:
        for path in ARTIFACT.findall(chunk):
            path = re.sub(r"<(id|session|N|sid)>|(?<=[/_])\d+(?=[./]|$)", "1", path)
            cut = re.split(r"[*<]", path)[0]
            found.append(cut + "\0" if cut != path else path)
    return found


def test_every_artifact_path_in_the_docs_is_an_output() -> None:
    wrong = []
    for page in PAGES:
        for path in artifact_paths(page):
            if not ignored(path.rstrip("\0")) and not names_an_output(path):
                wrong.append(f"{page.name}: {path}")
    assert wrong == [], "\n".join(wrong)
    assert not names_an_output("data/clean/1.parquet")
    assert names_an_output("data/clean/1.counts.npz") and names_an_output("scores/fewshot_\0")
