"""The gain benchmark's report plumbing: the README section is written from the report and nothing else."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gain():
    spec = importlib.util.spec_from_file_location("distill_gain", ROOT / "bench" / "distill_gain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(vanilla_curve, complete=False):
    summary = {
        "vanilla": {"map50_95_mean": 0.1, "map50_95_std": 0.004, "seeds": [0, 1], "epochs": 50, "gap_closed": 0.0},
        "gism": {"map50_95_mean": 0.13, "map50_95_std": 0.0, "seeds": [0], "epochs": 50, "gap_closed": 0.6},
    }
    return {"command": "python bench/distill_gain.py steps=report", "summary": summary,
            "vanilla_curves": {0: vanilla_curve}, "complete": complete}


def test_readme_block_is_replaced_from_the_report_and_rerunning_changes_nothing(gain, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{gain.README_START}\nold numbers\n{gain.README_END}\noutro\n")
    report = _report([0.01 * i for i in range(1, 21)])
    gain.update_readme(report, readme)
    text = readme.read_text()
    assert "old numbers" not in text and text.startswith("intro\n") and text.endswith("outro\n")
    assert "| vanilla | 0.1000 ± 0.0040 | 0,1 | 50 | 0.00 |" in text
    assert "| gism | 0.1300 (one seed) | 0 | 50 | 0.60 |" in text
    assert "(vanilla_time_matched, builtin not run at all)" in text
    gain.update_readme(report, readme)
    assert readme.read_text() == text


def test_readme_without_markers_is_left_alone(gain, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no block here\n")
    gain.update_readme(_report([0.1] * 20), readme)
    assert readme.read_text() == "no block here\n"


def test_convergence_verdict_uses_the_last_tenth_of_the_curve(gain):
    # 20 epochs: the last tenth is 2 epochs; 0.100 -> 0.1005 is +0.05 points (flat), 0.100 -> 0.110 is +1.0 point
    flat = [0.05] * 17 + [0.100, 0.1003, 0.1005]
    rising = [0.05] * 17 + [0.100, 0.105, 0.110]
    assert "+0.05 points" in gain.convergence_line(_report(flat)) and "stopped improving" in gain.convergence_line(
        _report(flat))
    assert "+1.00 points" in gain.convergence_line(_report(rising)) and "still rising" in gain.convergence_line(
        _report(rising))
