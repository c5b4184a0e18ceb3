"""Every stage draws its figures in a local style: the global matplotlib settings are the same
after the whole report as before (a global theme would restyle every figure drawn after it, so
a figure's look would depend on the stages' order), and the report draws without seaborn or
pandas (seconds of start-up for a few figures)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib
from test_report_stages import build, in_tree, tree  # noqa: F401 (fixtures)

from conftest import REPO

BACKEND = {"backend", "backend_fallback"}  # the report chooses Agg on purpose: no display on a compute node
FIGURES = 11  # forest plot, validation loss against the learning rate, loss curves, latency vs
# quality, drift by layer, CKA heatmaps, learning vs forgetting, update rank and intruders by
# layer, the epsilon sweep, mitigation, serving latency and throughput against batch size


def changed(before: dict, after: dict) -> dict:
    return {key: value for key, value in after.items() if before.get(key) != value and key not in BACKEND}


def test_every_stages_figures_leave_the_global_settings_alone(
    in_tree,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    before = dict(matplotlib.rcParams)
    page = build(in_tree[1], tmp_path / "report.html")
    assert page.count("<figure><svg") == FIGURES
    assert changed(before, dict(matplotlib.rcParams)) == {}


def fresh_interpreter_prints(code: str) -> str:
    """What `code` prints in a fresh interpreter with only src/ on the path (it must succeed)."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_importing_the_report_leaves_the_global_settings_alone() -> None:
    """A theme set when a module is imported, checked in a fresh interpreter."""
    code = (
        "import matplotlib, json\n"
        "before = {k: repr(v) for k, v in matplotlib.rcParams.items()}\n"
        "import lora_study.report.stages\n"
        "after = {k: repr(v) for k, v in matplotlib.rcParams.items()}\n"
        f"print(json.dumps(sorted(k for k in after if after[k] != before.get(k) and k not in {BACKEND!r})))\n"
    )
    assert fresh_interpreter_prints(code) == "[]"


def test_the_report_draws_without_seaborn_pandas_or_scipy() -> None:
    """Seaborn pulls in pandas and, where installed, scipy: about 2 s of build_report's start-up."""
    code = (
        "import sys, lora_study.report.stages\n"
        "print(sorted(m for m in ('seaborn', 'pandas', 'scipy') if m in sys.modules))\n"
    )
    assert fresh_interpreter_prints(code) == "[]"
