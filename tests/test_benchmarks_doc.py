"""docs/BENCHMARKS.md is generated from bench/results/ by bench/benchmarks_doc.py."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "benchmarks_doc.py"


@pytest.fixture(scope="module")
def doc():
    spec = importlib.util.spec_from_file_location("benchmarks_doc", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_file_is_what_the_results_give(doc):
    committed = (ROOT / "docs" / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert doc.render(ROOT / "bench" / "results") == committed, (
        "docs/BENCHMARKS.md is out of date: run python bench/benchmarks_doc.py"
    )


def test_render_is_deterministic(doc):
    results = ROOT / "bench" / "results"
    assert doc.render(results) == doc.render(results)


def test_a_new_figure_changes_the_output(doc, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "bench" / "results", results)
    before = doc.render(results)
    line = {"trials_per_s": 98765.4, "compile_s": 3.21, "config": {"batch_size": 512}}
    with open(results / "train_throughput_tpu1_2099-01-01_new.jsonl", "w") as f:
        f.write(json.dumps(line) + "\n")
    after = doc.render(results)
    assert after != before
    assert "98,765" in after and "tpu1" in after and "2099-01-01" in after
    assert "train_throughput_tpu1_2099-01-01_new.jsonl:1" in after


def test_a_changed_figure_changes_the_output_and_check_fails(doc, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    path = results / "chaotic_rnn_cpu2_2099-01-01.jsonl"
    path.write_text(json.dumps({"r2": 0.8123, "epochs": 10, "overrides": ["model.gen_dim=64"]}))
    out = tmp_path / "BENCHMARKS.md"
    assert doc.main(["--results", str(results), "--out", str(out)]) == 0
    assert "0.8123" in out.read_text() and "`model.gen_dim=64`" in out.read_text()
    assert doc.main(["--check", "--results", str(results), "--out", str(out)]) == 0
    path.write_text(json.dumps({"r2": 0.9001, "epochs": 10, "overrides": ["model.gen_dim=64"]}))
    assert doc.main(["--check", "--results", str(results), "--out", str(out)]) == 1
    assert "0.9001" in doc.render(results)


def test_lines_are_filed_under_the_benchmark_they_name(doc, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    lines = [
        {"bench": "reference_scan", "trials_per_s": 1400.0},
        {"bench": "train_throughput", "trials_per_s": 1700.0},
    ]
    text = "\n".join(json.dumps(x) for x in lines) + "\n"
    (results / "train_throughput_cpu2_2099-01-01_s1.jsonl").write_text(text)
    rendered = doc.render(results)
    scan, throughput = rendered.split("## Reference scan")[1], rendered.split("## Training")[1]
    assert "1,400" in scan and "1,700" not in scan
    assert "1,700" in throughput.split("## Reference scan")[0]


def test_a_malformed_line_names_the_file_and_line(doc, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "demo_cpu2_2099-01-01.jsonl").write_text('{"epochs": 1}\n{not json\n')
    with pytest.raises(SystemExit, match=r"demo_cpu2_2099-01-01.jsonl:2"):
        doc.render(results)
