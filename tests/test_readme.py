"""README.md stays short and nothing the documentation names is stale.

The README is one or two screens (at most 150 lines and 12 KB) that opens with the two
commands CI runs; the detail lives in docs/. On README.md and every docs page (docs/*.md,
docs/methods/*.md and the results index docs/results/README.md; not the record folders under
docs/results/, which describe the code at their own commit), everything named must exist: each
repository path in code or a link, each relative link and its #anchor, each
`lora_study.x.y` module (and the name it reads from it), and each `snakemake` command's
targets, `--configfile` files and `--workflow-profile` folder. No model, no snakemake run:
files and text only.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [
    README,
    *sorted(DOCS.glob("*.md")),
    *sorted((DOCS / "methods").glob("*.md")),
    DOCS / "results" / "README.md",
]
PAGE_IDS = [page.relative_to(REPO).as_posix() for page in PAGES]

MAX_LINES, MAX_BYTES = 150, 12 * 1024
# Exactly as .ci/run runs the second one.
COMMANDS = (
    "bash setup.sh && source .venv/bin/activate && snakemake --cores 1 report.html   # install, then run the default study\n"
    "bash setup.sh && .venv/bin/python -m pytest                                     # install, then run the tests\n"
)

FENCED = re.compile(r"^```[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`]+)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# A repository path: under one of the project's folders, or one of its top-level files.
PATH = re.compile(
    r"(?:(?:configs|docs|profiles|bench|src|rules|envs|scripts|schemas|tests|report|\.ci)/[\w./-]*"
    r"|LICENSE|setup\.sh|requirements(?:-data)?\.txt|config\.yaml|Snakefile|pyproject\.toml)"
)
PLACEHOLDER = re.compile(r"[<>{}*]|\.\.\.")
SEPARATORS = re.compile(r"[\s,;()\[\]'\"=|]+")
MODULE = re.compile(r"(?<![\w.])lora_study(?:\.\w+)+")
SNAKEMAKE = re.compile(r"(?:^|(?<=[\s;&|(]))(?:[\w./-]*/)?snakemake(?=\s|$)(.*)")

# snakemake options that take one value, and those that take every value up to the next option.
ONE_VALUE = {
    "--cores",
    "-c",
    "--jobs",
    "-j",
    "--workflow-profile",
    "--profile",
    "--report",
    "--sdm",
    "--software-deployment-method",
    "--slurm-status-command",
    "--executor",
    "-e",
    "--directory",
    "-d",
    "--snakefile",
    "-s",
    "--latency-wait",
    "--restart-times",
}
SEVERAL_VALUES = {"--configfile", "--configfiles", "--config", "-C", "--forcerun", "-R", "--until", "-U"}


def prose_and_code(text: str) -> tuple[str, list[str]]:
    """The text without its fenced blocks, and the pieces of code: each line of a fenced block
    and each inline span."""
    code = [line for block in FENCED.findall(text) for line in block.splitlines()]
    prose = FENCED.sub("", text)
    return prose, code + INLINE.findall(prose)


def named_paths(text: str) -> list[str]:
    """Repository paths named in code or as a link target (links relative to the page are
    checked by `broken_links`)."""
    prose, code = prose_and_code(text)
    found = []
    for piece in code + LINK.findall(prose):
        for token in SEPARATORS.split(piece):
            token = token.rstrip(".:")
            if token and not PLACEHOLDER.search(token) and PATH.fullmatch(token):
                found.append(token)
    return found


def missing_paths(text: str) -> list[str]:
    return [f"no such file or folder: {path}" for path in named_paths(text) if not (REPO / path).exists()]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    prose, _ = prose_and_code(page.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", prose, flags=re.MULTILINE):
        base = slug(heading)
        found.add(base if base not in seen else f"{base}-{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return found


def broken_links(text: str, page: Path) -> list[str]:
    """Relative links that lead nowhere, or to a heading the page does not have."""
    prose, _ = prose_and_code(text)
    problems = []
    for target in LINK.findall(prose):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            problems.append(f"link to nothing: {target}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"no heading #{anchor} in {resolved.relative_to(REPO)}: {target}")
    return problems


def module_file(parts: list[str]) -> Path | None:
    base = REPO / "src" / Path(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


def missing_modules(text: str) -> list[str]:
    """Each `lora_study.a.b[.name]`: the longest module prefix is a file under src/ below the
    package itself, and the next part, if any, a name that module defines."""
    problems = []
    for name in sorted(set(MODULE.findall(text))):
        parts = name.split(".")
        depth = max((i for i in range(1, len(parts) + 1) if module_file(parts[:i])), default=0)
        if depth < 2:
            problems.append(f"no module {'.'.join(parts[:2])} under src/: {name}")
        elif depth < len(parts) and parts[depth] not in top_level_names(module_file(parts[:depth])):
            problems.append(f"{'.'.join(parts[:depth])} defines no {parts[depth]}: {name}")
    return problems


def workflow_targets() -> tuple[set[str], set[str]]:
    """Rule names, and the plain file names the workflow's rules and Snakefile spell out."""
    sources = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]
    text = "\n".join(path.read_text(encoding="utf-8") for path in sources)
    rules = set(re.findall(r"^(?:rule|checkpoint)\s+(\w+)\s*:", text, flags=re.MULTILINE))
    files = {s for s in re.findall(r'"([^"\s{}]+)"', text) if "." in s}
    return rules, files


def snakemake_commands(text: str) -> list[list[str]]:
    """The arguments of every `snakemake ...` command in the page's code, comments cut."""
    _, code = prose_and_code(text)
    commands = []
    for piece in code:
        piece = re.split(r"\s#", piece, maxsplit=1)[0]
        for match in SNAKEMAKE.finditer(piece):
            commands.append(re.split(r"&&|;|\|", match.group(1))[0].split())
    return commands


def bad_snakemake_arguments(text: str) -> list[str]:
    rules, files = workflow_targets()
    problems = []
    for args in snakemake_commands(text):
        command = "snakemake " + " ".join(args)
        i = 0
        while i < len(args):
            arg = args[i]
            if arg in ONE_VALUE:
                if arg == "--workflow-profile" and not (REPO / args[i + 1] / "config.yaml").is_file():
                    problems.append(f"no workflow profile {args[i + 1]}: {command}")
                i += 2
                continue
            if arg in SEVERAL_VALUES:
                i += 1
                while i < len(args) and not args[i].startswith("-"):
                    if arg in ("--configfile", "--configfiles") and not (REPO / args[i]).is_file():
                        problems.append(f"no config file {args[i]}: {command}")
                    elif arg in ("--forcerun", "-R", "--until", "-U") and args[i] not in rules | files:
                        problems.append(f"no rule or target {args[i]}: {command}")
                    i += 1
                continue
            if not arg.startswith("-") and arg not in rules | files:
                problems.append(f"no rule or target {arg}: {command}")
            i += 1
    return problems


def test_the_readme_is_one_or_two_screens() -> None:
    data = README.read_bytes()
    assert len(data.decode("utf-8").splitlines()) <= MAX_LINES
    assert len(data) <= MAX_BYTES


def test_the_readme_opens_with_the_two_commands_ci_runs() -> None:
    text = README.read_text(encoding="utf-8")
    first = FENCED.search(text)
    assert first is not None and first.group(1) == COMMANDS
    # After a title and a couple of sentences.
    assert text[: first.start()].count("\n") <= 8
    # The test command is the one CI runs.
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert COMMANDS.splitlines()[1].split("#")[0].strip() in ci.splitlines()


def test_the_readme_has_no_figure_left_to_measure() -> None:
    assert "MEASURE(" not in README.read_text(encoding="utf-8")


def test_the_readme_cites_a_record_for_the_default_run_s_times() -> None:
    text = README.read_text(encoding="utf-8")
    cited = re.findall(r"docs/results/(\d{4}-\d\d-\d\d-\w+-config)/", text)
    assert cited and all((DOCS / "results" / name / "summary.json").is_file() for name in cited)


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_path_a_page_names_exists(page: Path) -> None:
    assert missing_paths(page.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_link_of_a_page_resolves(page: Path) -> None:
    assert broken_links(page.read_text(encoding="utf-8"), page) == []


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_module_a_page_names_exists(page: Path) -> None:
    assert missing_modules(page.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_snakemake_command_of_a_page_names_real_targets_and_files(page: Path) -> None:
    assert bad_snakemake_arguments(page.read_text(encoding="utf-8")) == []


def test_every_docs_page_is_linked() -> None:
    linked = set()
    for page in PAGES:
        prose, _ = prose_and_code(page.read_text(encoding="utf-8"))
        for target in LINK.findall(prose):
            path = target.partition("#")[0]
            if path and not re.match(r"[a-z][a-z0-9+.-]*:", path):
                linked.add((page.parent / path).resolve())
    assert [page.relative_to(REPO).as_posix() for page in PAGES[1:] if page.resolve() not in linked] == []


def test_the_checks_catch_stale_names() -> None:
    """Each check fails on a name the project does not have (or no longer has)."""
    page = DOCS / "RUNNING.md"
    stale = """
Run `python -m lora_study.compare_runs A B` or `lora_study.core.config.no_such_function`;
the logic is in `src/lora_study/stats.py`, see [statistics](STATISTICS.md#no-such-heading)
and [the old page](OLD.md).

```bash
snakemake --cores 2 no_such_rule --configfile configs/no-such.yaml
snakemake --workflow-profile profiles/nowhere report.html
```
"""
    assert sorted(missing_paths(stale)) == [
        "no such file or folder: configs/no-such.yaml",
        "no such file or folder: profiles/nowhere",
        "no such file or folder: src/lora_study/stats.py",
    ]
    assert broken_links(stale, page) == [
        "no heading #no-such-heading in docs/STATISTICS.md: STATISTICS.md#no-such-heading",
        "link to nothing: OLD.md",
    ]
    assert missing_modules(stale) == [
        "no module lora_study.compare_runs under src/: lora_study.compare_runs",
        "lora_study.core.config defines no no_such_function: lora_study.core.config.no_such_function",
    ]
    assert bad_snakemake_arguments(stale) == [
        "no rule or target no_such_rule: snakemake --cores 2 no_such_rule --configfile configs/no-such.yaml",
        "no config file configs/no-such.yaml: snakemake --cores 2 no_such_rule --configfile configs/no-such.yaml",
        "no workflow profile profiles/nowhere: snakemake --workflow-profile profiles/nowhere report.html",
    ]
    # What is there passes: a real module, name, rule, file, profile, link and heading.
    fine = """`lora_study.core.config.load_config`, `src/lora_study/stats/power.py`,
[sweeps](STATISTICS.md#learning-rates-chosen-on-a-validation-split-sweeps), `snakemake --forcerun
build_tables report.html`, `snakemake --workflow-profile profiles/gpu report.html --configfile
configs/tiny.yaml configs/tiny-sweep.yaml`"""
    assert missing_paths(fine) == broken_links(fine, page) == missing_modules(fine) == []
    assert bad_snakemake_arguments(fine) == []
