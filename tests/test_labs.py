"""What every lab shares: LabRecord (config check, resumable per-item JSONL, results, rates) and its section of the
report card."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from llmlab.errors import LlmlabError
from llmlab.labs.record import LabRecord, rate
from llmlab.report.render import write_report


@dataclass
class Experiment:
    n: int = 3
    seed: int = 0


def test_items_survive_a_kill_and_the_run_resumes_after_the_last_whole_line(tmp_path):
    record = LabRecord(tmp_path, "demo", Experiment())
    for i in range(2):
        record.add(f"item{i}", prompt=f"q{i}", output=f"a{i}", verdict=i % 2 == 0)
    with open(record.items_path, "a", encoding="utf-8") as f:
        f.write('{"key": "item2", "prompt": "q2", "out')  # the line being written when the process was killed
    again = LabRecord(tmp_path, "demo", Experiment())
    assert sorted(again.done) == ["item0", "item1"] and again.done["item1"]["output"] == "a1"
    again.add("item2", prompt="q2", output="a2", verdict=True)
    lines = again.items_path.read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["item0", "item1", "item2"]
    with pytest.raises(LlmlabError, match="already recorded"):
        again.add("item2")


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    LabRecord(tmp_path, "demo", Experiment())
    with pytest.raises(LlmlabError, match="other settings"):
        LabRecord(tmp_path, "demo", Experiment(seed=1))


def test_rates_carry_their_interval_and_n():
    r = rate(45, 50)
    assert r["rate"] == 0.9 and r["n"] == 50 and r["ci95"][0] == pytest.approx(0.7864, abs=1e-3)
    with pytest.raises(LlmlabError, match="at least one item"):
        rate(0, 0)


def test_a_lab_section_appears_in_the_report_card_with_its_plot(tmp_path):
    from llmlab.report.plots import loss_curves_png

    record = LabRecord(tmp_path, "demo", Experiment())
    png = loss_curves_png({"pretrain": {"metrics": [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.0}],
                                        "finished": True}})
    record.path("curve.png").write_bytes(png)
    record.write_results({"greedy": rate(3, 4)})
    record.write_section("Demo lab", [("p", "greedy pass@1 0.75 (n=4)"), ("table", ["k", "acc"], [["1", "0.75"]]),
                                      ("image", "curve.png", "accuracy curve")])
    md_path, html_path = write_report(tmp_path)
    md = md_path.read_text()
    assert "## Demo lab" in md and "greedy pass@1 0.75 (n=4)" in md and "](../labs/demo/curve.png)" in md
    assert (md_path.parent / "../labs/demo/curve.png").resolve().is_file()
    assert "data:image/png;base64," in html_path.read_text()
    with pytest.raises(LlmlabError, match="does not exist"):
        record.write_section("Demo lab", [("image", "missing.png", "x")])
    with pytest.raises(LlmlabError, match="not a report block"):
        record.write_section("Demo lab", [("chart", "x")])
