"""The ``duallinear`` command: each subcommand in --quick mode, the gap check, bad options."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from duallinear import cli
from duallinear import experiments as ex

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _read_csv(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _finite(rows, columns):
    for row in rows:
        for c in columns:
            assert math.isfinite(float(row[c])), (c, row[c])


def _check_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 1000


def test_gap_quick(tmp_path, capsys):
    out = tmp_path / "gap"
    code = cli.main(["gap", "--quick", "--out", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0
    assert "check passed" in text
    assert str(out) in text
    rows = _read_csv(out / "gap.csv")
    assert [int(r["d"]) for r in rows] == [5, 10, 20]
    cols = ["primal_value", "dual_value", "recovered_value", "closed_form_value",
            "relative_gap", "recovered_gap", "product_distance", "primal_time", "dual_time"]
    _finite(rows, cols)
    for r in rows:
        # X = I: the closed form is an independent oracle for the dual value
        cf = float(r["closed_form_value"])
        assert abs(float(r["dual_value"]) - cf) <= 1e-9 * cf
        assert abs(float(r["relative_gap"])) <= 1e-8
        assert abs(float(r["recovered_gap"])) <= 1e-8
        assert int(r["depth"]) == 3 and int(r["width"]) == max(1, round(0.5 * int(r["d"])))
    _check_png(out / "gap.png")
    meta = json.loads((out / "run.json").read_text())
    assert meta["exit_code"] == 0


def test_gap_check_fails_loudly(tmp_path, capsys, monkeypatch):
    real = ex.gap_point

    def spoiled(**kw):
        row = real(**kw)
        row["relative_gap"] = 1e-6  # as if the primal had stopped short
        return row

    monkeypatch.setattr(ex, "gap_point", spoiled)
    out = tmp_path / "bad"
    code = cli.main(["gap", "--sizes", "5", "--restarts", "1", "--out", str(out),
                     "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert "FAILED" in err and "d=5" in err
    assert (out / "gap.csv").exists() and (out / "gap.png").exists()


def test_gap_check_ignores_primal_off_paper_setting(tmp_path, capsys, monkeypatch):
    # on non-identity X only the recovered-vs-dual mismatch is a failure of the library
    real = ex.gap_point

    def spoiled(**kw):
        row = real(**kw)
        row["relative_gap"] = 1e-6
        return row

    monkeypatch.setattr(ex, "gap_point", spoiled)
    code = cli.main(["gap", "--sizes", "6", "--restarts", "1", "--x-kind", "gaussian",
                     "--out", str(tmp_path / "g"), "--no-progress"])
    assert code == 0, capsys.readouterr().err


def test_speed_quick(tmp_path, capsys):
    out = tmp_path / "speed"
    code = cli.main(["speed", "--quick", "--out", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0
    assert "CVXPY/DR" in text
    rows = _read_csv(out / "speed.csv")
    assert [int(r["d"]) for r in rows] == [10, 20]
    _finite(rows, ["dr_time", "dr_value", "dr_error", "primal_time", "primal_value",
                   "primal_error", "primal_over_dr", "reference"])
    for r in rows:
        assert float(r["dr_error"]) <= 1e-8
        assert float(r["primal_error"]) <= 1e-6
        if r["cvxpy_over_budget"] == "0":
            assert r["cvxpy_status"] == "optimal"
            assert float(r["cvxpy_error"]) <= 1e-5
    _check_png(out / "speed.png")


def test_hitting_quick(tmp_path, capsys):
    out = tmp_path / "hit"
    code = cli.main(["hitting", "--quick", "--out", str(out), "--no-progress"])
    assert code == 0
    rows = _read_csv(out / "hitting.csv")
    assert {r["method"] for r in rows} == {"gd", "lbfgs"}
    assert sorted({int(r["width"]) for r in rows}) == [1, 3, 6]
    _finite(rows, ["hit_rate", "optimum", "certified_gap", "best_relative_gap"])
    for r in rows:
        assert 0 <= int(r["hits"]) <= int(r["runs"]) == 5
        assert float(r["hit_rate"]) == int(r["hits"]) / int(r["runs"])
        # nobody beats the certified optimum by more than rounding
        assert float(r["best_relative_gap"]) >= -1e-9
        assert float(r["certified_gap"]) <= 1e-8
    _check_png(out / "hitting.png")


def test_branches_quick(tmp_path, capsys):
    out = tmp_path / "br"
    assert cli.main(["branches", "--quick", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert str(out) in text
    rows = _read_csv(out / "branches.csv")
    for column in ("x_kind", "penalty", "H", "B", "width", "lower", "upper", "relative_gap",
                   "hit_rate", "dual_lower"):
        assert column in rows[0]
    kinds = {(r["x_kind"], r["penalty"], int(r["H"])) for r in rows}
    assert kinds == {(x, p, H) for x in ("identity", "gaussian")
                     for p in ("schatten", "frobenius") for H in (2, 3)}
    _finite(rows, ["lower", "upper", "relative_gap", "hit_rate", "dual_lower"])
    by = {(r["x_kind"], r["penalty"], int(r["H"]), int(r["B"])): r for r in rows}
    for (x, pen, H, B), r in by.items():
        lower, upper = float(r["lower"]), float(r["upper"])
        assert lower <= upper * (1 + 1e-9) and 0.0 <= float(r["hit_rate"]) <= 1.0
        if pen == "schatten" or H == 2 or x == "identity":
            assert int(r["exact"]) == 1
        if pen == "schatten":
            # the output-coupled dual does not depend on B; the gap does not increase with B
            # and vanishes once B k >= rank M_cvx
            assert float(r["dual_lower"]) == float(by[(x, pen, H, 1)]["dual_lower"])
            if B > 1:
                assert float(r["relative_gap"]) <= float(by[(x, pen, H, B - 1)]["relative_gap"]) \
                    + 1e-12
            if B >= int(r["cvx_rank"]):
                assert abs(float(r["relative_gap"])) <= 1e-9
        if pen == "frobenius" and H == 2:
            twin = by[(x, "schatten", H, B)]
            assert (r["lower"], r["upper"]) == (twin["lower"], twin["upper"])
        if pen == "frobenius" and H == 3:
            assert int(r["dual_vacuous"]) == 1
    _check_png(out / "branches.png")


def test_branches_one_x_kind(tmp_path, capsys):
    out = tmp_path / "one"
    assert cli.main(["branches", "--quick", "--x-kind", "gaussian", "--penalties", "schatten",
                     "--out", str(out), "--no-progress"]) == 0
    rows = _read_csv(out / "branches.csv")
    assert {r["x_kind"] for r in rows} == {"gaussian"}
    assert {r["penalty"] for r in rows} == {"schatten"}


@pytest.mark.parametrize("argv", [
    ["gap", "--sizes", "5,-3"],
    ["gap", "--sizes", "-5"],
    ["gap", "--x-kind", "spiral"],
    ["gap", "--restarts", "0"],
    ["gap", "--gamma", "nan"],
    ["gap", "--width", "-2"],
    ["gap", "--depth", "1"],
    ["speed", "--budget", "-1"],
    ["hitting", "--seeds", "0"],
    ["hitting", "--methods", "sgd"],
    ["gaps", "--conds", "0.5"],
    ["gaps", "--ks", "0"],
    ["gaps", "--time-limit", "0"],
    ["gap", "--jobs", "0"],
    ["branches", "--penalties", "l1"],
    ["branches", "--depth", "1"],
    ["branches", "--d", "0"],
    ["branches", "--x-kind", "spiral"],
    ["frobnicate"],
])
def test_bad_options_exit_2_with_one_line(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([*argv, "--out", str(tmp_path / "o")] if argv[0] != "frobnicate" else argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "error" in err
    assert not (tmp_path / "o").exists()


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = subprocess.run(
        [sys.executable, "-m", "duallinear", "speed", "--quick", "--out",
         str(blocker / "sub")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--out" in lines[0]
    assert "Traceback" not in proc.stderr


def test_default_output_folder_is_new_and_under_cwd(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ex, "speed_point", lambda d, **kw: _fake_speed_row(d))
    assert cli.main(["speed", "--sizes", "4", "--no-progress"]) == 0
    made = [p for p in tmp_path.iterdir() if p.name.startswith("duallinear-out-speed-")]
    assert len(made) == 1 and (made[0] / "speed.csv").exists()
    assert str(made[0]) in capsys.readouterr().out


def _fake_speed_row(d):
    return {"d": d, "x_kind": "identity", "seed": 0, "depth": 3, "width": 1, "gamma": 1.0,
            "reference": 1.0, "dr_time": 0.1, "dr_value": 1.0, "dr_error": 0.0,
            "dr_certified_gap": 0.0, "dr_iterations": 1, "dr_converged": True,
            "cvxpy_time": 100.0, "cvxpy_value": 0.5, "cvxpy_error": 0.5,
            "cvxpy_status": "solved_inaccurate", "cvxpy_over_budget": True,
            "primal_time": 0.2, "primal_value": 1.0, "primal_error": 0.0,
            "primal_restarts": 1, "cvxpy_over_dr": 1000.0, "primal_over_dr": 2.0}


def test_speed_skips_cvxpy_after_over_budget(tmp_path, monkeypatch, capsys):
    seen = []

    def fake(d, **kw):
        seen.append((d, kw["run_cvxpy"]))
        row = _fake_speed_row(d)
        if not kw["run_cvxpy"]:
            row.update(cvxpy_status="skipped", cvxpy_over_budget=False,
                       cvxpy_time=float("nan"))
        return row

    monkeypatch.setattr(ex, "speed_point", fake)
    assert cli.main(["speed", "--sizes", "8,4,16", "--out", str(tmp_path / "s"),
                     "--no-progress"]) == 0
    assert seen == [(4, True), (8, False), (16, False)]
    text = capsys.readouterr().out
    assert "over budget" in text and "skipped" in text


# ------------------------------------------------------------------------ experiments
@pytest.mark.parametrize("kind", ex.X_KINDS)
def test_make_data_kinds(kind):
    X, Y = ex.make_data(8, 3, kind, seed=1)
    assert X.shape[0] == 8 and Y.shape == (3, X.shape[1])
    s = np.linalg.svd(X, compute_uv=False)
    if kind == "identity":
        np.testing.assert_array_equal(X, np.eye(8))
    elif kind == "gaussian":
        assert s[-1] > 1e-6 * s[0]
    elif kind == "rank-deficient":
        assert np.sum(s > 1e-10 * s[0]) == 4
    else:
        assert s[0] / s[-1] == pytest.approx(ex.ILL_CONDITION, rel=1e-8)
    X2, Y2 = ex.make_data(8, 3, kind, seed=1)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(Y, Y2)


def test_make_data_rejects_unknown_kind():
    with pytest.raises(ValueError, match="x_kind"):
        ex.make_data(3, 3, "spiral")


def test_gap_point_general_x_dual_matches_primal():
    row = ex.gap_point(6, x_kind="ill-conditioned", restarts=3, seed=2)
    assert math.isnan(row["closed_form_value"])
    assert abs(row["recovered_gap"]) <= 1e-8
    # weak duality: the best primal value can never be below the certified lower bound
    assert row["relative_gap"] >= -1e-10


def test_sweep_parallel_equals_serial():
    points = [dict(d=d, restarts=1) for d in (4, 6)]
    serial = ex.sweep(ex.gap_point, points, n_jobs=1)
    parallel = ex.sweep(ex.gap_point, points, n_jobs=2)
    for a, b in zip(serial, parallel, strict=True):
        assert a["d"] == b["d"]
        # same seeds, same points; only BLAS rounding may differ between processes
        assert a["dual_value"] == pytest.approx(b["dual_value"], rel=1e-12)
        assert a["primal_value"] == pytest.approx(b["primal_value"], rel=1e-12)


# ------------------------------------------------------------- interface and interruption
def test_version(capsys):
    import duallinear

    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"duallinear {duallinear.__version__}"


def _subparsers(parser):
    import argparse

    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_option_and_subcommand_is_described():
    parser = cli.build_parser()
    commands = _subparsers(parser)
    assert set(commands) == {"gap", "speed", "hitting", "branches", "gaps", "main"}
    for name, sub in [("duallinear", parser), *commands.items()]:
        assert sub.description, f"{name} has no description"
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings} has no help"


def test_rows_are_written_as_points_finish_and_ctrl_c_keeps_them(tmp_path, capsys,
                                                                monkeypatch):
    real = ex.gap_point
    seen = []

    def interrupted_at_third(**kw):
        if len(seen) == 2:
            # The two finished rows are on disk before the third point starts.
            assert len(_read_csv(tmp_path / "o" / "gap.csv")) == 2
            raise KeyboardInterrupt
        seen.append(kw["d"])
        return real(**kw)

    monkeypatch.setattr(ex, "gap_point", interrupted_at_third)
    code = cli.main(["gap", "--sizes", "4,5,6,7", "--restarts", "1", "--out",
                     str(tmp_path / "o"), "--no-progress"])
    assert code == cli.EXIT_INTERRUPTED == 130
    assert "kept 2 finished point(s)" in capsys.readouterr().err
    rows = _read_csv(tmp_path / "o" / "gap.csv")
    assert [int(r["d"]) for r in rows] == [4, 5]
    _check_png(tmp_path / "o" / "gap.png")  # the finished points, plotted
    meta = json.loads((tmp_path / "o" / "run.json").read_text())
    assert meta["exit_code"] == 130 and meta["interrupted"] is True


def test_sigint_keeps_the_finished_rows(tmp_path):
    # The real thing: a process interrupted by SIGINT (Ctrl-C) mid-sweep.
    import signal
    import time

    out = tmp_path / "sig"
    # A process started in the background of a non-interactive shell (as CI may run this
    # suite) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt: give
    # the child the default disposition, as a terminal would.
    proc = subprocess.Popen(
        [sys.executable, "-m", "duallinear", "gap", "--sizes", ",".join(["6"] * 400),
         "--restarts", "1", "--out", str(out), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            path = out / "gap.csv"
            if path.exists() and len(path.read_text().splitlines()) >= 3:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted: kept" in err
    rows = _read_csv(out / "gap.csv")
    assert 2 <= len(rows) < 400
    assert all(int(r["d"]) == 6 and r["dual_converged"] == "1" for r in rows)


def test_a_missing_extra_names_its_pip_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    code = cli.main(["gap", "--quick", "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert 'pip install "duallinear[cli]"' in err and "matplotlib" in err
    assert not (tmp_path / "o").exists()  # nothing computed, no folder


def test_speed_warms_every_solver_up_before_timing(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(ex, "warm_up", lambda **kw: calls.append("warm-up"))
    monkeypatch.setattr(ex, "speed_point",
                        lambda d, **kw: calls.append(d) or _fake_speed_row(d))
    assert cli.main(["speed", "--sizes", "8,4", "--out", str(tmp_path / "s"),
                     "--no-progress"]) == 0
    assert calls == ["warm-up", 4, 8]


def test_warm_up_runs_each_solver(monkeypatch):
    import duallinear as dl

    methods = []
    real = dl.solve_dual

    def spy(problem, **kw):
        methods.append(kw.get("method", "dr"))
        return real(problem, **kw)

    monkeypatch.setattr(ex, "solve_dual", spy)
    monkeypatch.setattr(ex, "solve_primal",
                        lambda problem, **kw: methods.append("primal"))
    ex.warm_up()
    assert methods == ["dr", "cvxpy", "primal"]


def _figure_of(monkeypatch, plot, rows, tmp_path):
    figures = []
    monkeypatch.setattr(cli, "_save", lambda plt, fig, path: figures.append(fig))
    plot(rows, tmp_path / "x.png")
    return figures[0]


def test_gap_plot_has_the_recovered_curve_and_the_table_3_panel(tmp_path, monkeypatch):
    rows = [ex.gap_point(d, restarts=1) for d in (4, 6)]
    fig = _figure_of(monkeypatch, cli.plot_gap, rows, tmp_path)
    values, gaps, table3 = fig.axes
    labels = [line.get_label() for line in values.get_lines()]
    assert any(label.startswith("recovered") for label in labels)
    assert "Table 3" in table3.get_title()
    np.testing.assert_allclose(table3.get_lines()[0].get_ydata(),
                               [max(r["product_distance"], 1e-17) for r in rows])


def test_hitting_plot_one_panel_per_depth_distinct_styles(tmp_path, monkeypatch):
    rows = [{"method": m, "depth": H, "gamma": g, "width": w, "hit_rate": 0.5}
            for m in ("gd", "lbfgs") for H in (2, 3, 4) for g in (0.1, 0.5, 1.0)
            for w in (1, 2)]
    fig = _figure_of(monkeypatch, cli.plot_hitting, rows, tmp_path)
    assert [ax.get_title() for ax in fig.axes] == ["H = 2", "H = 3", "H = 4"]
    for ax in fig.axes:
        styles = [(line.get_color(), line.get_marker()) for line in ax.get_lines()]
        assert len(styles) == 6 and len(set(styles)) == 6


def _quick(command: str, out, capsys) -> str:
    """Run ``duallinear COMMAND --quick`` into ``out``; its stdout (exit code 0 asserted)."""
    assert cli.main([command, "--quick", "--out", str(out), "--no-progress"]) == 0
    return capsys.readouterr().out


def test_gaps_quick(tmp_path, capsys):
    out = tmp_path / "gaps"
    assert "proved non-zero duality gap" in _quick("gaps", out, capsys)
    rows = _read_csv(out / "gaps.csv")
    summary = _read_csv(out / "gaps-summary.csv")
    assert len(rows) == sum(int(r["instances"]) for r in summary)
    for r in summary:
        assert int(r["zero"]) + int(r["gap"]) + int(r["undecided"]) == int(r["instances"])
    _finite(rows, ["dual_value", "dual_upper", "primal_lower", "primal_upper", "smin_x"])
    for r in rows:
        assert float(r["dual_value"]) <= float(r["dual_upper"])
        assert float(r["primal_lower"]) <= float(r["primal_upper"])
        if r["verdict"] == "gap":
            assert float(r["primal_lower"]) > float(r["dual_upper"])
            assert r["dual_status"] == "duality_gap"
    # The quick sweep contains the seeded instance of tests/test_gaps.py.
    assert any(r["verdict"] == "gap" and r["seed"] == "123" for r in rows)
    _check_png(out / "gaps.png")
