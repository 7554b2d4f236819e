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


def test_help_and_usage_errors_do_not_import_torch():
    """`jpegsr --help` and a mistyped option answer without importing torch (seconds on a small
    CPU): the parser is built from jpegsr.defaults alone."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from jpegsr.cli import build_parser\n"
        "parser = build_parser()\n"
        "for argv in (['--help'], ['upscale', '--help'], ['upscale', 'x.jpg', '--tile', '3']):\n"
        "    try:\n"
        "        parser.parse_args(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('torch', 'numpy', 'PIL') if m in sys.modules))\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[]"
    assert "must be 0 (no tiling) or >= 16" in run.stderr


def test_report_names_are_the_reports_built():
    from jpegsr.defaults import REPORT_NAMES
    from jpegsr.reports import REPORTS

    assert tuple(REPORTS) == REPORT_NAMES
