"""Print the study's headline figures from a run's result files, with the commit that ran it,
so the README quotes files rather than typing numbers by hand.

    python bench/study_figures.py                    # the default config's results in ./results
    python bench/study_figures.py --root /path/run   # another run's folder

Prints: the comparisons' verdicts (raw and Holm-adjusted p), drift per variant group with
its interval, weight-space drift (effective rank, intruders) on the modules LoRA targets and
on all modules, forgetting on in-domain and general text with intervals, and Study 4's verdicts.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lora_study.io import read_json  # noqa: E402


def interval(value: dict, digits: int = 5, sign: bool = False) -> str:
    fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
    return f"{fmt.format(value['estimate'])} [{fmt.format(value['low'])}, {fmt.format(value['high'])}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--dataset", default="aclsum")
    args = parser.parse_args()
    root = args.root
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    compare = read_json(root / f"results/compare/{args.model}/{args.dataset}/comparisons.json")
    drift_dir = root / f"results/drift/{args.model}/{args.dataset}"
    summary = read_json(drift_dir / "summary.json")
    print(f"# figures of {root.resolve()} (commit {commit or 'unknown'}; summary made {summary['meta']['created_at']})\n")

    print("## comparisons (metric %s, %d examples)" % (compare["run"]["metric"], compare["run"]["examples"]))
    for record in compare["comparisons"] + compare.get("precisions", []):
        d = record["difference"]
        print(f"- {record['b']} - {record['a']}: {d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}], "
              f"p {record['p_value']:.3g}, adjusted {record.get('p_adjusted', float('nan')):.3g} "
              f"({record.get('family', '?')}): {'supported' if record['supported'] else 'not supported'}")
    for verdict in compare["verdicts"]:
        print(f"- verdict: {verdict['text']}")

    print(f"\n## drift ({summary['run']['examples']} prompts, mean over {summary['run']['mean_over']}, "
          f"{summary['run']['confidence']:.0%} intervals, {summary['run']['resamples']} resamples)")
    for group, info in summary["groups"].items():
        largest = max(info["per_layer"], key=lambda row: row["estimate"])
        print(f"- {group}: mean drift {interval(info['mean_drift'])}; largest {largest['estimate']:.5f} at layer "
              f"{largest['layer']}; forgetting in-domain {interval(info['forgetting']['in_domain'], 4, True)}, "
              f"general {interval(info['forgetting']['general'], 4, True)} nats/token "
              f"(base {info['forgetting']['general']['base_mean_nll']:.4f})")
    for verdict in summary["verdicts"]:
        print(f"- verdict: {verdict['text']}")

    print("\n## weight space")
    lora_kinds: set[str] = set()
    results = {}
    for variant_dir in sorted(path for path in drift_dir.iterdir() if (path / "weights.json").is_file()):
        results[variant_dir.name] = read_json(variant_dir / "weights.json")["metrics"]
        if not variant_dir.name.startswith("fft-"):
            lora_kinds |= {m["kind"] for m in results[variant_dir.name]["modules"]}
    for name, metrics in results.items():
        s = metrics["summary"]
        on_targets = [m for m in metrics["modules"] if m["kind"] in lora_kinds]
        ranks = [m["effective_rank"] for m in on_targets]
        print(f"- {name}: all {s['modules']} modules: median effective rank {s['median_effective_rank']}, "
              f"max {s['max_effective_rank']}, intruders {s['intruders']}, mean relative update "
              f"{s['mean_relative_update_norm']:.3e}; on {'/'.join(sorted(lora_kinds))} ({len(on_targets)} modules): "
              f"median effective rank {statistics.median(ranks) if ranks else 'n/a'}, "
              f"intruders {sum(m['intruders'] for m in on_targets)}")


if __name__ == "__main__":
    main()
