"""The workflow on a real one-node SLURM cluster, through Snakemake's SLURM executor plugin
and this project's profile (profiles/slurm): every job a SLURM job, a failing job reported
with its logs while --keep-going lets the others finish, and a rerun that runs only what is
missing.

The cluster (tests/slurm/cluster.sh: munged, slurmctld, slurmd from Debian's `slurm-wlm` and
`munge`) is started for this module and stopped after it. Starting it needs root; without
root or the packages the test skips and says why, except under CI=true, where it fails.

The node has no GPU, 2 CPUs and a few GB, so the shipped profile's requests cannot all be
granted as they are. The test reads each rule's resources from the dry run with the shipped
profile (the plan a user sees) and passes them back with `--set-resources`, GPUs set to 0
and CPUs and memory capped at half the node (two jobs side by side). Everything else
(executor, restart policy, latency wait, default resources) comes from the profile itself.
The shipped profile keeps asking for GPUs; no switch in it or in the rules exists for tests.

The config is the tests' tiny one, every stage (training, comparisons, quantisation, drift),
on a local copy of aclsum papers whose one broken row makes the data job fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from test_envs import rule_blocks

from conftest import REPO, snakemake_command
from lora_study.core.config import overlay
from lora_study.core.data import load_split
from lora_study.core.io import read_json, write_jsonl

pytestmark = pytest.mark.slow

CLUSTER_SCRIPT = REPO / "tests" / "slurm" / "cluster.sh"
PROFILE = REPO / "profiles" / "slurm"
SLURM_TOOLS = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scontrol", "scancel")
# Settings a one-node cluster without accounting needs (docs/RUNNING.md, "On a SLURM cluster"),
# and a short first status check so that the test does not idle.
SLURM_ARGS = (
    "--executor",
    "slurm",
    "--workflow-profile",
    str(PROFILE),
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--slurm-keep-successful-logs",
    "--keep-going",
)
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")
# The first run's data file holds fewer papers than the evaluation set asks for (tiny: 4): the
# data job finds it. (A broken row no longer reaches a job: the dry run reads a local file's rows.)
SHORT_ROWS = 3


def why_slurm_cannot_start() -> str | None:
    if os.geteuid() != 0:
        return "starting munged, slurmctld and slurmd needs root (CI runs as root)"
    missing = [tool for tool in SLURM_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found: apt-get install slurm-wlm munge (.ci/run does)"
    conf = Path("/etc/slurm/slurm.conf")
    if conf.is_file() and not conf.read_text().startswith("# Written by tests/slurm/cluster.sh"):
        return f"{conf} exists (a real SLURM node?): the test cluster would have to replace it"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed (bash setup.sh installs it)"
    return None


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A running one-node cluster: (environment for SLURM commands, node CPUs, node memory in MB)."""
    reason = why_slurm_cannot_start()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: the real-SLURM test must run, but {reason}")
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm-cluster")
    # The cluster's slurm.conf is /etc/slurm/slurm.conf (see cluster.sh): no SLURM_CONF.
    env = {name: value for name, value in os.environ.items() if name != "SLURM_CONF"}
    try:
        subprocess.run(["bash", str(CLUSTER_SCRIPT), "start", str(state)], check=True, env=env, timeout=120)
        node = subprocess.run(
            ["sinfo", "--noheader", "--Node", "--format=%c %m"], check=True, env=env, capture_output=True, text=True
        ).stdout.split()
        yield env, int(node[0]), int(node[1])
    finally:
        subprocess.run(["bash", str(CLUSTER_SCRIPT), "stop", str(state)], env=env, timeout=120)


def snakemake(workdir: Path, configfile: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    command = snakemake_command(workdir, *args, configfile=configfile)
    # 30 min: the whole tiny workflow as SLURM jobs, two at a time on a 2-core node.
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    result.output = result.stdout + result.stderr  # type: ignore[attr-defined]
    return result


def planned_resources(output: str) -> dict[str, dict[str, str]]:
    """Rule -> resources as the dry run prints them."""
    plan: dict[str, dict[str, str]] = {}
    for rule, block in re.findall(r"^rule (\w+):\n((?:    .*\n)+)", output, flags=re.MULTILINE):
        line = re.search(r"^    resources: (.*)$", block, flags=re.MULTILINE)
        if line:
            plan[rule] = dict(item.split("=", 1) for item in line.group(1).split(", "))
    return plan


def node_share_cpus(resources: dict[str, str], *, cpus: int) -> int:
    """The CPUs a job may reserve on the test node: its request, at most half the node."""
    return min(int(resources.get("cpus_per_task", 1)), max(1, cpus // 2))


def one_node_overrides(plan: dict[str, dict[str, str]], *, cpus: int, mem_mb: int) -> list[str]:
    """`--set-resources` values: the plan's requests with no GPU and at most half the node each."""
    overrides = []
    for rule, resources in sorted(plan.items()):
        wanted = {
            "gpu": 0,
            "cpus_per_task": node_share_cpus(resources, cpus=cpus),
            "mem_mb": min(int(resources.get("mem_mb", 1000)), mem_mb // 2),
            "runtime": int(resources.get("runtime", 30)),
        }
        overrides += [f"{rule}:{key}={value}" for key, value in wanted.items()]
    return overrides


def one_node_threads(plan: dict[str, dict[str, str]], *, cpus: int) -> list[str]:
    """`--set-threads` values: each job's threads equal to the CPUs it reserves, so two jobs
    on the test node do not run four torch threads on two cores (which made the run's time
    vary twofold)."""
    return [f"{rule}={node_share_cpus(resources, cpus=cpus)}" for rule, resources in sorted(plan.items())]


def submitted_jobs(output: str) -> list[tuple[str, str, Path]]:
    """(rule, SLURM job id, SLURM log) for every job the plugin submitted."""
    jobs = []
    for _, slurm_id, log in SUBMITTED.findall(output):
        rule = re.search(r"/rule_(\w+)/", log)
        assert rule, log
        jobs.append((rule.group(1), slurm_id, Path(log)))
    return jobs


def job_stats(output: str) -> dict[str, int]:
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.MULTILINE)}


def run_on_slurm(
    number: int,
    workdir: Path,
    configfile: Path,
    env: dict[str, str],
    run_args: tuple[str, ...],
    capsys: pytest.CaptureFixture,
) -> tuple[subprocess.CompletedProcess, list[tuple[str, str, Path]], dict[str, str]]:
    """One workflow run through the executor: its output (kept as run<number>.out beside the
    work folder), the jobs it submitted and their SLURM states, printed with the job ids."""
    result = snakemake(workdir, configfile, env, *run_args)
    (workdir.parent / f"run{number}.out").write_text(result.output)
    jobs = submitted_jobs(result.output)
    states = {slurm_id: slurm_state(slurm_id, env) for _, slurm_id, _ in jobs}
    show(
        capsys,
        [
            f"SLURM run {number} (exit {result.returncode}): {rule} -> SLURM job {slurm_id} ({states[slurm_id]})"
            for rule, slurm_id, _ in jobs
        ],
    )
    return result, jobs, states


def slurm_state(slurm_id: str, env: dict[str, str]) -> str:
    """The job's state as the SLURM controller records it (finished jobs stay MinJobAge s)."""
    shown = subprocess.run(["scontrol", "show", "job", slurm_id], env=env, capture_output=True, text=True, check=True)
    return re.search(r"JobState=(\w+)", shown.stdout).group(1)


def write_papers(path: Path, *, rows: int = 30) -> None:
    """The first `rows` aclsum test-split papers as a local dataset."""
    papers = load_split(data={"dataset": "aclsum"}, split="test")[:rows]
    write_jsonl(path, [{"id": paper.id, "input": paper.input, "reference": paper.reference} for paper in papers])


def show(capsys: pytest.CaptureFixture, lines: list[str]) -> None:
    """Print to the terminal even while pytest captures output (CI logs show the job ids)."""
    with capsys.disabled():
        print("\n" + "\n".join(lines), flush=True)


# Derived from the rules, not listed: a model rule declares the GPU slot (tests/test_profiles.py),
# and the profile must give exactly those a GPU; every other rule is a CPU job, listed in the
# profile only where it needs more than default-resources.
RULES = set(rule_blocks()) | {
    name for smk in (REPO / "rules").glob("*.smk") for name in re.findall(r"^checkpoint (\w+):", smk.read_text(), re.M)
}
GPU_RULES = {rule for rule, block in rule_blocks().items() if re.search(r"^        gpu_slot=1,", block, re.MULTILINE)}
CPU_RULES = RULES - GPU_RULES


def test_profile_plan_shows_each_rules_request(tmp_path: Path) -> None:
    """`snakemake -n --workflow-profile profiles/slurm` (no cluster needed) prints every job
    with the resources the profile asks for: a GPU for model work, none for the rest."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm" and "gpu" not in profile["default-resources"]
    for rule, resources in profile["set-resources"].items():
        assert {"cpus_per_task", "mem_mb", "runtime"} <= set(resources), rule
        assert (resources.get("gpu", 0) >= 1) == (rule in GPU_RULES), rule
    assert GPU_RULES <= set(profile["set-resources"]) <= RULES, set(profile["set-resources"]) ^ RULES
    assert len(GPU_RULES) >= 10 and {"train_full", "measure_latency", "build_report"} <= RULES
    env = {name: value for name, value in os.environ.items() if name != "SLURM_CONF"}
    dry = snakemake(
        tmp_path, REPO / "configs" / "tiny.yaml", env, "-n", "--workflow-profile", str(PROFILE), "report.html"
    )
    assert dry.returncode == 0, dry.output[-4000:]
    plan = planned_resources(dry.output)
    assert {"prepare_model", "make_eval_subset", "generate_predictions", "score_predictions", "build_report"} <= set(
        plan
    )
    for rule, resources in plan.items():
        if rule not in profile["set-resources"]:
            continue  # a rule added since: its own resources, else the profile's defaults
        wanted = profile["set-resources"][rule]
        assert {key: resources.get(key) for key in ("cpus_per_task", "mem_mb", "runtime")} == {
            key: str(wanted[key]) for key in ("cpus_per_task", "mem_mb", "runtime")
        }, rule
        assert resources.get("gpu") == ("1" if rule in GPU_RULES else None), rule


def test_tiny_workflow_runs_as_slurm_jobs(slurm_cluster, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    env, node_cpus, node_mem_mb = slurm_cluster
    workdir = tmp_path / "work"
    papers = workdir / "data" / "papers.jsonl"
    write_papers(papers, rows=SHORT_ROWS)
    # The tests' tiny config, on a local copy of the same aclsum papers: a data file a user
    # got wrong is the job that fails, no switch in the workflow needed.
    config = overlay(
        yaml.safe_load((REPO / "config.yaml").read_text()), yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    )
    config["data"].update(
        dataset="local",
        local={
            "train_file": str(papers),
            "eval_file": str(papers),
            "id_field": "id",
            "input_field": "input",
            "reference_field": "reference",
        },
    )
    configfile = tmp_path / "tiny-local.yaml"
    configfile.write_text(yaml.safe_dump(config))

    # The plan with the shipped profile: GPU rules ask for a GPU, the others do not.
    dry = snakemake(workdir, configfile, env, "-n", "--workflow-profile", str(PROFILE), "report.html")
    assert dry.returncode == 0, dry.output[-4000:]
    plan = planned_resources(dry.output)
    assert plan["generate_predictions"]["gpu"] == "1"
    assert all(
        "gpu" not in plan[rule] for rule in ("prepare_model", "make_eval_subset", "score_predictions", "build_report")
    )
    overrides = one_node_overrides(plan, cpus=node_cpus, mem_mb=node_mem_mb)
    threads = one_node_threads(plan, cpus=node_cpus)
    run_args = (*SLURM_ARGS, "report.html", "--set-resources", *overrides, "--set-threads", *threads)

    # First run: make_eval_subset fails on the short file; the jobs that do not need its data
    # (prepare_model, ...) run to the end anyway.
    first, first_jobs, first_states = run_on_slurm(1, workdir, configfile, env, run_args, capsys)
    assert first.returncode != 0, first.output[-4000:]
    submitted = {rule for rule, _, _ in first_jobs}
    assert {"prepare_model", "make_eval_subset"} <= submitted, first.output[-4000:]
    assert not submitted & {"generate_predictions", "train_adapter", "score_predictions", "build_report"}, (
        "they need the subsets"
    )
    for rule, slurm_id, slurm_log in first_jobs:
        if rule != "make_eval_subset":
            assert first_states[slurm_id] == "COMPLETED", (rule, slurm_id)
            continue
        assert first_states[slurm_id] == "FAILED"
        assert f"SLURM-job '{slurm_id}' failed" in first.output
        # Snakemake's error block names the rule's log, SLURM's log and the SLURM job id.
        assert f"log: logs/make_eval_subset/local.log, {slurm_log} (check log file(s)" in first.output
        assert f"external_jobid: {slurm_id}\n" in first.output
        assert "data.eval.size: asks for 4 examples but local/eval has only 3" in slurm_log.read_text()
    assert "Error in rule make_eval_subset" in first.output
    assert "logs/make_eval_subset/local.log" in first.output, "the failure names the rule's log"
    assert "data.eval.size: asks for 4 examples" in (workdir / "logs/make_eval_subset/local.log").read_text()
    assert (workdir / "resources/models/smollm2-135m-instruct/manifest.json").is_file(), "--keep-going let it finish"
    assert not (workdir / "results/data/local/eval.jsonl").exists()

    # Fix the data: the rerun plans exactly the jobs that did not complete, and runs each as
    # a SLURM job.
    write_papers(papers)
    completed: dict[str, int] = {}
    for rule, slurm_id, _ in first_jobs:
        if first_states[slurm_id] == "COMPLETED":
            completed[rule] = completed.get(rule, 0) + 1
    missing = snakemake(workdir, configfile, env, "-n", "--workflow-profile", str(PROFILE), "report.html")
    assert missing.returncode == 0, missing.output[-4000:]
    expected = job_stats(missing.output)
    everything = job_stats(dry.output)
    assert expected == {
        rule: n - completed.get(rule, 0) for rule, n in everything.items() if n > completed.get(rule, 0)
    }
    assert "prepare_model" not in expected

    second, second_jobs, second_states = run_on_slurm(2, workdir, configfile, env, run_args, capsys)
    assert second.returncode == 0, second.output[-6000:]
    ran: dict[str, int] = {}
    for rule, slurm_id, slurm_log in second_jobs:
        ran[rule] = ran.get(rule, 0) + 1
        assert second_states[slurm_id] == "COMPLETED", (rule, slurm_id)
        assert slurm_log.is_file(), slurm_log
    assert ran == expected, "every missing job ran, each as a SLURM job, and nothing else"
    assert "<th>ROUGE-L</th>" in (workdir / "report.html").read_text()
    assert read_json(workdir / "results/eval/smollm2-135m-instruct/local/base/scores.json")["run"]["examples"] == 4
    # Every stage ran on the cluster: trained variants, their drift, the quantised model.
    assert {"train_adapter", "train_full", "measure_drift", "measure_latency", "compare_variants"} <= set(ran)
    assert len(list(workdir.glob("results/drift/smollm2-135m-instruct/local/fft-n4-lr*-s1/drift.json"))) == 1

    done = snakemake(workdir, configfile, env, "-n", "--workflow-profile", str(PROFILE), "report.html")
    assert done.returncode == 0 and "Nothing to be done" in done.output, done.output[-3000:]
