"""report.html from result files: escaped, self-contained, numbers from the files."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import yaml

from conftest import REPO
from lora_study.core.config import overlay, validate_config
from lora_study.report.foundation import VariantResult, foundation_sections
from lora_study.report.page import Section, write_page
from lora_study.report.plotting import plot_svg
from lora_study.tasks.rouge import mean_scores, score_examples

EVIL = '<script>alert("x")</script> & more'


class Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.sources += [value or "" for name, value in attrs if name in ("src", "href")]


def make_report(tmp_path: Path) -> tuple[str, dict]:
    config = validate_config(
        overlay(
            yaml.safe_load((REPO / "config.yaml").read_text()), yaml.safe_load((REPO / "configs/tiny.yaml").read_text())
        ),
        source="tiny.yaml",
    )
    predictions = [{"id": "ex<1>", "prediction": EVIL, "reference": "The reference."}]
    per_example = score_examples(predictions=[EVIL], references=["The reference."])
    means = mean_scores(per_example)
    rouge = {
        "run": {"examples": 1, "task": "summarisation"},
        "metrics": {"mean": means, "mean_values": {kind: value["fmeasure"] for kind, value in means.items()}},
    }
    generation = {
        "run": {"examples": 1},
        "metrics": {
            "load_seconds": 1.0,
            "generate_seconds": 2.0,
            "generated_tokens": 10,
            "tokens_per_second": 5.0,
            "truncated_inputs": 0,
            "stopped_naturally": 1,
        },
        "meta": {
            "device_name": "cpu",
            "dtype": "float32",
            "created_at": "2026-01-01T00:00:00+00:00",
            "platform": "linux",
            "versions": {"torch": "2.13.0"},
        },
    }
    variants = [VariantResult(name="base", scores=rouge, predictions=predictions, generation=generation)]
    sections = foundation_sections(
        config=config,
        manifest={
            "source": "embedded",
            "architecture": "LlamaForCausalLM",
            "parameters": 1000,
            "checks": {"rope_theta": 1e5},
        },
        subsets={"run": {"dataset": "aclsum"}, "metrics": {"eval": {"size": 1}}, "meta": {}},
        variants=variants,
        eval_examples=[{"id": "ex<1>", "input": "An <b>abstract</b>.", "reference": "The reference."}],
        intervals={},
    )
    write_page(sections=[*sections, Section("provenance", "Provenance", "")], out_path=tmp_path / "report.html")
    return (tmp_path / "report.html").read_text(), rouge


def test_model_and_data_text_is_escaped(tmp_path: Path) -> None:
    page, _ = make_report(tmp_path)
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in page
    assert "An &lt;b&gt;abstract&lt;/b&gt;." in page and "ex&lt;1&gt;" in page
    collector = Collector()
    collector.feed(page)
    assert "script" not in collector.tags
    assert "<b>abstract</b>" not in page


def test_page_is_self_contained_and_numbers_come_from_the_files(tmp_path: Path) -> None:
    page, rouge = make_report(tmp_path)
    collector = Collector()
    collector.feed(page)
    external = [source for source in collector.sources if not source.startswith("#")]
    assert external == []  # no external scripts, styles, images or links: it opens offline
    assert "#quality" in collector.sources and "#provenance" in collector.sources
    assert f"{rouge['metrics']['mean']['rougeL']['fmeasure']:.4f}" in page
    assert "<td>dataset</td><td>aclsum</td>" in page and "<td>eval</td><td>size: 1</td>" in page  # run, then metrics


def test_figures_are_inline_svg() -> None:
    def draw(figure, axes) -> None:
        axes.scatter([1, 2], [3, 4])
        axes.set_title("latency <vs> quality")

    markup = plot_svg(draw, figsize=(4, 3))
    assert markup.startswith("<figure><svg") and markup.endswith("</svg>\n</figure>")
    assert "<?xml" not in markup and "latency &lt;vs&gt; quality" in markup
    assert plot_svg(draw, figsize=(4, 3)) == markup  # the same figure, the same markup: no date, fixed ids
