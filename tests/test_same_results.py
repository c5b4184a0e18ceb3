"""bench/same_results.py: two runs whose results differ only in measured times and meta are the
same; a changed value, row or file is named."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("same_results", REPO / "bench" / "same_results.py")
assert _spec is not None and _spec.loader is not None
same_results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(same_results)


def make_run(root: Path, *, seconds: float, rouge: float, prediction: str, extra: bool = False) -> Path:
    folder = root / "results" / "eval" / "m" / "d" / "base"
    folder.mkdir(parents=True)
    result = {
        "run": {"variant": "base"},
        "metrics": {"rougeL": rouge, "generate_seconds": seconds, "latency_seconds": {"p50": seconds}},
        "meta": {"created_at": str(seconds), "code_version": "abc"},
    }
    (folder / "scores.json").write_text(json.dumps(result))
    (folder / "predictions.jsonl").write_text(json.dumps({"id": 1, "prediction": prediction}) + "\n")
    (folder / "loss.csv").write_text(f"step,loss,seconds\n1,2.5,{seconds}\n")
    if extra:
        (folder / "extra.json").write_text("{}")
    (root / "results" / "adapters" / "m" / "d" / "v" / "adapter").mkdir(parents=True)
    (root / "results" / "adapters" / "m" / "d" / "v" / "adapter" / "adapter_config.json").write_text(str(seconds))
    return root


def test_measured_times_and_meta_do_not_count_but_every_result_value_does(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", seconds=1.0, rouge=0.25, prediction="text")
    b = make_run(tmp_path / "b", seconds=2.0, rouge=0.25, prediction="text")
    assert same_results.compare(run_a=a, run_b=b) == ([], [], 3)
    assert same_results.main([str(a), str(b)]) == 0

    c = make_run(tmp_path / "c", seconds=1.0, rouge=0.2500001, prediction="other", extra=True)
    found, close, compared = same_results.compare(run_a=a, run_b=c)
    assert compared == 3 and same_results.main([str(a), str(c)]) == 1
    assert found == [
        "results/eval/m/d/base/extra.json: only in B",
        "results/eval/m/d/base/predictions.jsonl[0].prediction: 'text' against 'other'",
        "results/eval/m/d/base/scores.json.metrics.rougeL: 0.25 against 0.2500001",
    ]
    assert close == []


def test_a_tolerance_lists_close_numbers_apart_and_nothing_else(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", seconds=1.0, rouge=0.25, prediction="text")
    near = make_run(tmp_path / "near", seconds=1.0, rouge=0.25 + 1e-14, prediction="text")
    found, close, _ = same_results.compare(run_a=a, run_b=near, rel_tol=1e-9)
    assert found == [] and len(close) == 1 and close[0].startswith("results/eval/m/d/base/scores.json.metrics.rougeL")
    assert same_results.main([str(a), str(near), "--rel-tol", "1e-9"]) == 0
    assert same_results.main([str(a), str(near)]) == 1  # exact by default
    # Beyond the tolerance, or not a number, it is a difference as before.
    far = make_run(tmp_path / "far", seconds=1.0, rouge=0.26, prediction="other")
    found, close, _ = same_results.compare(run_a=a, run_b=far, rel_tol=1e-9)
    assert close == [] and len(found) == 2
    # CSV cells are numbers too: 2.5 against 2.5000000000001 in loss.csv is close.
    assert list(same_results.differences([{"loss": "2.5"}], [{"loss": "2.5000000000001"}]))[0][1] < 1e-12


def test_a_key_is_a_measurement_by_its_words_not_its_letters() -> None:
    assert same_results.measured("tokens_per_second") and same_results.measured("peak_rss_bytes")
    assert same_results.measured("under_load") and same_results.measured("created_at")
    assert not same_results.measured("update_remaining") and not same_results.measured("artefact_bytes")
    assert same_results.measured("code_version")  # provenance, like meta
    assert same_results.measured("decode_tokens_per_second.p50")  # a table's joined column


def test_a_table_row_s_run_id_and_code_version_do_not_count(tmp_path: Path) -> None:
    rows = {
        "a": "run,code_version,metric,value\nc919-abc,abc,rougeL,0.25\n",
        "b": "run,code_version,metric,value\nc919-def,def,rougeL,0.25\n",
    }
    for name, text in rows.items():
        (tmp_path / f"{name}.csv").write_text(text)
    assert (
        list(
            same_results.differences(same_results.content(tmp_path / "a.csv"), same_results.content(tmp_path / "b.csv"))
        )
        == []
    )
