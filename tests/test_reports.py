"""jpegsr.reports: the committed derived files are what `jpegsr report all` builds from the
committed results (no hand-typed number survives), and the compute curve's arithmetic."""

import os
import subprocess
from pathlib import Path

import pytest

from jpegsr import reports
from jpegsr.cli import main
from jpegsr.reports.curve import fit, hours_to_reach
from jpegsr.weights_io import shipped_models

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # reports read and name paths relative to the repository root


def test_committed_derived_files_are_what_report_all_builds(in_repo):
    texts = reports.build(["all"])
    expected = {"results/table1.md", "results/table1.json", "results/quality.md",
                "results/quality.json", "README.md", "results/compute_curve.md",
                "results/compute_curve.json", "results/baselines/README.md"}  # fmt: skip
    cards = {f"src/jpegsr/weights/{n}.md" for n in shipped_models()}
    cards.add("src/jpegsr/weights/denoisers/dncnn.md")  # the (M) denoiser's card, built whole
    assert {str(p.resolve().relative_to(REPO)) for p in texts} == expected | cards
    assert reports.stale(texts) == []


def test_report_check_flags_a_hand_edited_number(in_repo, tmp_path, capsys):
    assert main(["report", "all", "--check"]) == 0
    table = REPO / "results" / "table1.md"
    original = table.read_text()
    try:
        table.write_text(original.replace("26.", "27.", 1))  # a number typed by hand
        assert main(["report", "table1", "--check"]) == 1
        assert "results/table1.md: differs" in capsys.readouterr().err
    finally:
        tmp = table.with_name(".restore.tmp")
        tmp.write_text(original)
        os.replace(tmp, table)
    assert main(["report", "table1", "--check"]) == 0


def test_fit_recovers_gain_per_doubling():
    a, b = fit([(1.0, 10.0), (2.0, 11.0), (8.0, 13.0)])
    assert a == pytest.approx(10.0)
    assert b == pytest.approx(1.0)


def test_hours_to_reach_doubles_per_unit_of_gap():
    rate, hours = hours_to_reach([(1.0, 10.0), (2.0, 11.0)], 13.0)
    assert rate == pytest.approx(1.0)
    assert hours == pytest.approx(8.0)


def test_a_flat_or_falling_curve_never_reaches_the_target():
    rate, hours = hours_to_reach([(1.0, 10.0), (4.0, 9.5)], 11.0)
    assert rate < 0
    assert hours is None


def test_results_hold_only_what_their_readme_lists():
    """One layout: every top-level entry of results/ is a row of results/README.md, and back."""
    import re

    readme = (REPO / "results" / "README.md").read_text()
    listed = set()
    for row in readme.splitlines():
        if row.startswith("| `"):
            listed |= {name.rstrip("/") for name in re.findall(r"`([^`]+)`", row.split("|")[1])}
    tracked = subprocess.run(["git", "ls-files", "results"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split()  # fmt: skip
    present = {path.split("/")[1] for path in tracked}
    assert present == listed


def test_table1_lists_each_trained_rows_budget_device_and_wall_time():
    from jpegsr.reports import table1

    training = {"run": "rcan_clean", "iterations": "20000", "batch_size": "16", "lr_patch": "48",
                "wall_seconds": "5400", "device": "cuda", "machine": "NVIDIA H200"}  # fmt: skip
    # label -> the "training" record of the row's benchmark JSON (rows not run are absent)
    m_row = {**training, "run": "rcan_denoised", "wall_seconds": "6000"}
    trained = {"RCAN": training, "RCAN(M)": m_row, "DBPN": None, "bicubic": training}
    lines = table1.training_lines(trained)
    assert "| RCAN | 20,000 | 16 x 48 px | cuda | NVIDIA H200 | 90 min |" in lines
    assert "| RCAN(M) | 20,000 | 16 x 48 px | cuda | NVIDIA H200 | 100 min |" in lines  # trained
    assert "| DBPN | not recorded | | | | |" in lines
    assert not any(line.startswith(("| s-LWSR32", "| bicubic")) for line in lines)


def test_table1_says_how_far_a_parked_cpu_row_has_come(tmp_path, monkeypatch):
    """A row without results whose CPU run is parked in git (scripts/park_run.py) is listed
    with the last iteration of its parked log; rows with nothing parked are not."""
    from jpegsr.reports import table1

    log = tmp_path / "parked/runs/table1_20k_cpu/two_stage_nocycle/train_log.csv"
    log.parent.mkdir(parents=True)
    log.write_text("iteration,loss\n100,0.09\n12000,0.03\n")
    monkeypatch.chdir(tmp_path)
    budget = next(b for b in table1.BUDGETS if b.key == "20k")
    missing = {"two-stage, no cycle loss": "two_stage_nocycle", "RCAN": "rcan_clean"}
    lines = table1.training_now_lines(budget, missing)
    assert lines[2:] == [
        "- two-stage, no cycle loss: 12,000 of 20,000 iterations "
        "(`parked/runs/table1_20k_cpu/two_stage_nocycle/`)",
        "",
    ]
    assert table1.training_now_lines(budget, {"RCAN": "rcan_clean"}) == []


def test_no_shipped_run_is_listed_among_the_runs_not_shipped():
    """quality.md sums a shipped run's hours once, in the training sum, not again below it;
    a stretch that was not shipped is listed even when it shares its config's name with one
    that was (continuing_cpu4 and continuing_cpu7 beside continuing_cpu6 = blind_photos4)."""
    from jpegsr.reports import quality
    from jpegsr.reports.common import training_stages
    from jpegsr.weights_io import shipped_models

    stages = [st for n in shipped_models() for st in training_stages(n)]
    shipped = {quality.stage_key(st["run"], st["iterations"], st["wall_seconds"]) for st in stages}
    assert "lever_extra_photos_cpu" in {st["run"] for st in stages}
    listed = "\n".join(quality.experiments_section(set()))
    assert "[`lever_extra_photos_cpu`]" in listed  # its record is there to be left out
    kept = "\n".join(quality.experiments_section(shipped))
    for folder in ("lever_extra_photos_cpu", "lever_budgie_cpu", "lever_restart_cpu",
                   "continuing_cpu6", "continuing_cpu1", "continuing_lease1"):  # fmt: skip
        assert f"[`{folder}`]" in listed and f"[`{folder}`]" not in kept
    for folder in ("lever_ssim_cpu", "continuing_cpu4", "continuing_cpu7"):  # measured, not shipped
        assert f"[`{folder}`]" in kept


def test_readme_table_follows_the_quality_report_not_a_stale_file(in_repo, monkeypatch):
    """`report all` is right in one pass: the README's table is built from what the quality
    report builds now, even while results/quality.json on disk is out of date."""
    from jpegsr.reports import quality, readme
    from jpegsr.reports.common import RESULTS

    fresh = quality.build()[RESULTS / "quality.json"]
    real_read = Path.read_text

    def stale_quality_json(path, *args, **kwargs):
        if path.resolve() == (REPO / "results" / "quality.json").resolve():
            return fresh.replace("blind", "stale")  # what an old file would name
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", stale_quality_json)
    text = readme.build()[readme.README]
    assert "stale" not in text and "jpegsr (`blind" in text
