"""``python -m duallinear``: the main job on its embedded default (the paper's setting)."""

from __future__ import annotations

import re
import subprocess
import sys


def _number(pattern, text):
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not found in:\n{text}"
    return float(match.group(1))


def test_main_job_reports_zero_gap(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "duallinear"], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "H = 3" in out and "X = I (20 x 20)" in out
    assert "hidden widths (10, 10)" in out and "gamma = 0.1" in out
    primal = _number(r"primal:.*?P = (\S+)", out)
    dual = _number(r"dual:.*?D = (\S+)", out)
    recovered = _number(r"recovered weights\s+P = (\S+)", out)
    rel = _number(r"relative gap primal - dual: (\S+)", out)
    cert = _number(r"certified gap of the recovered weights: \S+ \(relative (\S+)\)", out)
    assert abs(rel) <= 1e-8 and abs(cert) <= 1e-8
    assert abs(primal - dual) <= 1e-8 * abs(dual)
    assert abs(recovered - dual) <= 1e-8 * abs(dual)
    assert "zero duality gap confirmed" in out
    # no output folder is created by the main job
    assert list(tmp_path.iterdir()) == []


def test_main_module_with_arguments_is_the_command():
    proc = subprocess.run([sys.executable, "-m", "duallinear", "gap", "--x-kind", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "--x-kind" in proc.stderr


def test_main_subcommand_small_instance():
    proc = subprocess.run([sys.executable, "-m", "duallinear", "main", "--d", "6", "--width",
                           "2", "--restarts", "2"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "X = I (6 x 6)" in proc.stdout
    assert abs(_number(r"relative gap primal - dual: (\S+)", proc.stdout)) <= 1e-8
