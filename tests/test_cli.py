"""CLI plumbing: the models listing and clean one-line errors."""

import json

from jpegsr.cli import main


def test_models_json_lists_every_architecture_with_parameter_counts(capsys):
    assert main(["models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    counts = {r["name"]: r["parameters"] for r in listing["architectures"]}
    assert {"slwsr16", "slwsr32", "two_stage_slwsr32", "rcan_small", "dbpn_small"} <= set(counts)
    assert abs(counts["slwsr32"] - 571_000) / 571_000 < 0.03
    assert "q20" in listing["shipped"] and "default" not in listing["shipped"]


def test_train_with_a_bad_config_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: x\nmodel: slwsr16\niterations: 1\nbogus: 2\n")
    assert main(["train", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "unknown key" in err and len(err.strip().splitlines()) == 1
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read config" in capsys.readouterr().err


def test_python_dash_m_jpegsr_is_the_command_line():
    import subprocess
    import sys

    import jpegsr

    run = subprocess.run([sys.executable, "-m", "jpegsr", "--version"], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0 and run.stdout.strip() == f"jpegsr {jpegsr.__version__}"
    bad = subprocess.run([sys.executable, "-m", "jpegsr", "upscale"], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "required: INPUT" in bad.stderr
