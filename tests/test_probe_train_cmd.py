"""``alice-ref probe`` and ``alice-ref train``: exit codes, JSON/CSV schema, plots, budgets.

The handlers are called in-process (``main(argv)`` and ``register(subparsers)``) with --quick
and a temporary --out directory.
"""

import argparse
import csv
import importlib.util
import json
import math
import os
import sys

import numpy as np
import pytest

from alice_ref.tools import _training as training
from alice_ref.tools import probe as probe_cmd
from alice_ref.tools import train as train_cmd
from alice_ref.tools._output import Progress

HAVE_MPL = importlib.util.find_spec("matplotlib") is not None
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_ok(path):
    with open(path, "rb") as f:
        return f.read(8) == PNG_MAGIC


# -- probe -------------------------------------------------------------------------------------

def test_probe_default_quick_writes_json_and_plots(tmp_path, capsys):
    rc = probe_cmd.main(["--quick", "--samples", "3", "--steps", "3", "--out", str(tmp_path),
                         "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "glass density" in out and "power law" in out and "coverage" in out
    d = json.loads((tmp_path / "probe.json").read_text())
    assert d["meta"]["task"] == "default"
    assert d["meta"]["groups"] == ["W", "c", "v", "d"]
    groups = d["curvature"]["groups"]
    assert [g["name"] for g in groups] == ["W", "c", "v", "d"]
    assert [g["size"] for g in groups] == [72, 12, 12, 1]  # ReluTeacherStudent.param_sizes
    for g in groups:
        assert g["glass_density"]["value"] >= 0 and g["curvature_abs"]["value"] >= 0
    assert d["curvature"]["n_probes"] == 3
    assert d["curvature"]["evaluations"] == 1 + 2 * 3
    for g in d["power_law"]["groups"]:
        assert set(g) >= {"p", "se", "ci", "t", "y", "regime"}
        assert len(g["t"]) == 7
    assert [lp["direction"] for lp in d["loss_prediction"]] == ["rademacher", "coordinate"]
    for lp in d["loss_prediction"]:
        assert len(lp["steps"]) == 5
        for s in lp["steps"]:
            assert 0.0 <= s["coverage"] <= 1.0 and s["n_steps"] == 3
    assert d["constants"]["NOMINAL_COVERAGE"] == pytest.approx(math.erf(1 / math.sqrt(math.pi)))
    if HAVE_MPL:
        for name in ("power_law.png", "two_term.png", "coverage.png"):
            assert _png_ok(tmp_path / name)
        assert set(d["meta"]["files"]) == {"probe.json", "power_law.png", "two_term.png",
                                           "coverage.png"}
    else:
        assert d["meta"]["files"] == ["probe.json"]


def test_probe_same_seed_same_json(tmp_path):
    args = ["--quick", "--samples", "2", "--steps", "2", "--no-plot", "--no-progress",
            "--direction", "coordinate"]
    assert probe_cmd.main(args + ["--out", str(tmp_path / "a")]) == 0
    assert probe_cmd.main(args + ["--out", str(tmp_path / "b")]) == 0
    a, b = (json.loads((tmp_path / x / "probe.json").read_text()) for x in "ab")
    for d in (a, b):
        d["meta"].pop("seconds")
    assert a == b
    assert not (tmp_path / "a" / "power_law.png").exists()


def test_probe_bad_arguments_exit_2(capsys):
    assert probe_cmd.main(["--samples", "1", "--no-progress"]) == 2
    assert probe_cmd.main(["--sigma", "-1", "--no-progress"]) == 2
    assert probe_cmd.main(["--batch", "999", "--no-progress"]) == 2
    assert "error" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        probe_cmd.main(["--task", "imagenet"])
    assert e.value.code == 2


def test_probe_missing_dependency_exit_3(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn -> ImportError
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    assert probe_cmd.main(["--task", "digits", "--quick", "--no-progress"]) == 3
    assert "alice-ref[data]" in capsys.readouterr().err


def test_probe_digits_quick(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    rc = probe_cmd.main(["--task", "digits", "--quick", "--samples", "2", "--steps", "2",
                         "--out", str(tmp_path), "--no-plot", "--no-progress"])
    assert rc == 0
    d = json.loads((tmp_path / "probe.json").read_text())
    assert [g["name"] for g in d["curvature"]["groups"]] == ["fc1.weight", "fc1.bias",
                                                            "fc2.weight", "fc2.bias"]
    assert [g["size"] for g in d["curvature"]["groups"]] == [64 * 64, 64, 640, 10]
    assert d["meta"]["batch"] == 64


def test_register_into_a_parent_parser(tmp_path):
    parser = argparse.ArgumentParser(prog="alice-ref")
    sub = parser.add_subparsers(dest="command", required=True)
    assert probe_cmd.register(sub).prog.endswith("probe")
    assert train_cmd.register(sub).prog.endswith("train")
    args = parser.parse_args(["probe", "--quick", "--samples", "2", "--steps", "2",
                              "--no-progress", "--no-plot", "--out", str(tmp_path)])
    assert args.func(args) == 0
    args = parser.parse_args(["train", "--quick", "--seeds", "1", "--budget", "40",
                              "--optimizers", "alice,adam", "--no-progress", "--no-plot"])
    assert args.func(args) == 0


# -- train -------------------------------------------------------------------------------------

def _alice_batches(budget, beta1=0.9, q=3):
    """Batches Alice fits in a budget: sample steps (3 evaluations) in warm-up t <= 1/(1-beta1)
    and when t mod (q+1) = 0, else quick steps (1) -- docs/spec/algorithm.md#one-batch, steps 1-2
    and R8."""
    t = evals = 0
    while True:
        cost = 3 if (t + 1 <= 1 / (1 - beta1) or (t + 1) % (q + 1) == 0) else 1
        if evals + cost > budget:
            return t, evals
        t, evals = t + 1, evals + cost


def test_train_default_quick_equal_budgets(tmp_path, capsys):
    budget = 61
    rc = train_cmd.main(["--quick", "--seeds", "2", "--budget", str(budget), "--out",
                         str(tmp_path), "--no-progress", "--optimizers",
                         "alice,alice-abs,alice-glass,alice-rms,adam,sgdm,adahessian"])
    assert rc == 0
    assert "t3-adahessian skipped" in capsys.readouterr().out
    d = json.loads((tmp_path / "train.json").read_text())
    names = [r["optimizer"] for r in d["summary"]]  # the old names are aliases of the -q3 ones
    assert names == ["t6-alice-glass-abs-q3", "t5-alice-abs-q3", "t4-alice-glass-q3",
                     "t7-alice-rms-glass-q3", "t1-adam", "t2-sgdm"]
    batches, evals = _alice_batches(budget)
    for r in d["runs"]:
        if "alice" in r["optimizer"]:
            assert (r["batches"], r["evaluations"]) == (batches, evals)
        else:
            assert (r["batches"], r["evaluations"]) == (budget, budget)
        assert r["curve_evals"][0] == 0 and r["curve_evals"][-1] == r["evaluations"]
        assert r["final_loss"] == r["curve_loss"][-1] and not r["diverged"]
    for row in d["summary"]:
        losses = [r["final_loss"] for r in d["runs"] if r["optimizer"] == row["optimizer"]]
        assert row["final_loss_mean"] == pytest.approx(np.mean(losses))
        assert row["final_loss_std"] == pytest.approx(np.std(losses, ddof=1))
        # every optimiser improves on the starting loss (same start for a given seed)
        starts = [r["curve_loss"][0] for r in d["runs"] if r["optimizer"] == row["optimizer"]]
        assert row["final_loss_mean"] < np.mean(starts)
    with open(tmp_path / "train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 * 2 and set(rows[0]) >= {"optimizer", "seed", "final_loss"}
    if HAVE_MPL:
        assert _png_ok(tmp_path / "train_curves.png")


def test_train_bad_arguments_exit_2():
    assert train_cmd.main(["--optimizers", "lbfgs", "--no-progress"]) == 2
    assert train_cmd.main(["--budget", "1", "--no-progress"]) == 2
    assert train_cmd.main(["--lr", "adam=-1", "--no-progress"]) == 2
    assert train_cmd.main(["--seeds", "0", "--no-progress"]) == 2
    assert train_cmd.main(["--optimizers", "adahessian", "--no-progress"]) == 2


def test_train_tune_picks_from_grid():
    out = {}
    orig = train_cmd.format_summary

    def capture(o):
        out.update(o)
        return orig(o)

    mp = pytest.MonkeyPatch()
    mp.setattr(train_cmd, "format_summary", capture)
    try:
        assert train_cmd.main(["--quick", "--tune", "--seeds", "1", "--budget", "20",
                               "--optimizers", "sgdm", "--no-progress"]) == 0
    finally:
        mp.undo()
    grid = out["tuning"]["t2-sgdm"]["grid"]  # 'sgdm' is the alias of T2
    base = train_cmd.DEFAULT_LR["default"]["t2-sgdm"]
    assert [g["lr"] for g in grid] == pytest.approx([base * f for f in train_cmd.TUNE_FACTORS])
    best = min(grid, key=lambda g: g["worst_final_loss"])
    assert out["learning_rates"]["t2-sgdm"] == best["lr"]


def test_numpy_baselines_match_torch_optim():
    torch = pytest.importorskip("torch")
    A = np.array([[3.0, 1.0], [1.0, 2.0]])
    grad = lambda th: A @ th - 1.0
    for mine, make in ((train_cmd.AdamNumpy, lambda p: torch.optim.Adam(p, lr=0.1)),
                       (train_cmd.SGDMomentumNumpy,
                        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9))):
        th0 = np.array([1.0, -2.0])
        opt = mine(th0, 0.1)
        p = torch.tensor(th0, requires_grad=True)
        ref = make([p])
        for _ in range(25):
            opt.step(grad)
            p.grad = torch.tensor(grad(p.detach().numpy()))
            ref.step()
        np.testing.assert_allclose(opt.theta, p.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_train_digits_quick(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    budget = 40
    rc = train_cmd.main(["--task", "digits", "--quick", "--seeds", "1", "--budget", str(budget),
                         "--optimizers", "alice,alice-glass,adam,sgdm", "--out", str(tmp_path),
                         "--no-plot", "--no-progress"])
    assert rc == 0
    d = json.loads((tmp_path / "train.json").read_text())
    have_at = importlib.util.find_spec("alice_torch") is not None
    batches, evals = _alice_batches(budget)
    for r in d["runs"]:
        assert 0.0 <= r["final_test_accuracy"] <= 1.0
        if "alice" in r["optimizer"]:
            assert r["impl"] == ("alice_torch.Alice" if have_at else
                                 "alice_ref.driver.Alice on torch tensors")
            assert (r["batches"], r["evaluations"]) == (batches, evals)
        else:
            assert r["evaluations"] == budget
    assert {row["optimizer"] for row in d["summary"]} == {
        "t6-alice-glass-abs-q3", "t4-alice-glass-q3", "t1-adam", "t2-sgdm"}


def test_train_digits_with_alice_torch(tmp_path):
    pytest.importorskip("alice_torch")
    pytest.importorskip("sklearn")
    rc = train_cmd.main(["--task", "digits", "--quick", "--seeds", "1", "--budget", "20",
                         "--optimizers", "alice-rms", "--out", str(tmp_path), "--no-plot",
                         "--no-progress"])
    assert rc == 0
    d = json.loads((tmp_path / "train.json").read_text())
    assert d["summary"][0]["impl"] == "alice_torch.Alice"


def test_train_digits_alice_fallback_on_core_driver(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    monkeypatch.setattr(training, "alice_torch_or_none", lambda: None)
    budget = 45  # warm-up (10 sample steps) takes 30; updates start after it
    rc = train_cmd.main(["--task", "digits", "--quick", "--seeds", "1", "--budget", str(budget),
                         "--optimizers", "alice", "--out", str(tmp_path), "--no-plot",
                         "--no-progress"])
    assert rc == 0
    d = json.loads((tmp_path / "train.json").read_text())
    (run,) = d["runs"]
    assert run["impl"] == "alice_ref.driver.Alice on torch tensors"
    assert (run["batches"], run["evaluations"]) == _alice_batches(budget)
    assert run["final_loss"] < run["curve_loss"][0]
    assert any("alice_torch is not importable" in n for n in d["notes"])


def test_train_digits_adahessian(tmp_path):
    """T3 runs with pytorch_optimizer's AdaHessian or, without it, alice_ref's own."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    rc = train_cmd.main(["--task", "digits", "--quick", "--seeds", "1", "--budget", "21",
                         "--optimizers", "adahessian", "--out", str(tmp_path), "--no-plot",
                         "--no-progress"])
    assert rc == 0
    (run,) = json.loads((tmp_path / "train.json").read_text())["runs"]
    assert (run["batches"], run["evaluations"]) == (10, 20)  # 2 evaluations per batch


def test_train_t_variants_are_the_papers(capsys):
    """T4-T7 are the scripts' Alice variants (quick_steps 0; T7 without glass); a variant that
    differs says so in its name; the default run is T1-T7."""
    v = training.ALICE_VARIANTS
    assert {k: (c["hess_comp"], c["grad_glass"], c["quick_steps"]) for k, c in v.items()
            if "-q3" not in k} == {"t4-alice-glass": ("zero", True, 0),
                                   "t5-alice-abs": ("abs", False, 0),
                                   "t6-alice-glass-abs": ("abs", True, 0),
                                   "t7-alice-rms": ("rms", False, 0)}
    assert all(c["quick_steps"] == 3 for k, c in v.items() if k.endswith("-q3"))
    assert v["t7-alice-rms-glass-q3"]["grad_glass"] and training.ADAHESSIAN_EPS == {
        "t3-adahessian": 1e-8, "t3-adahessian-eps1e-4": 1e-4}
    assert [n[:2] for n in train_cmd.DEFAULT_OPTIMIZERS] == [f"t{k}" for k in range(1, 8)]


def test_train_equal_epochs(tmp_path, capsys):
    """--equal epochs: every optimiser runs the same batches (2 epochs of 256 / 32 = 8 batches),
    whatever they cost in gradient evaluations (Alice with q = 0: 3 per batch)."""
    rc = train_cmd.main(["--equal", "epochs", "--epochs", "2", "--seeds", "1", "--optimizers",
                         "t1-adam,t6-alice-glass-abs", "--out", str(tmp_path), "--no-plot",
                         "--no-progress"])
    assert rc == 0
    runs = {r["optimizer"]: r for r in json.loads((tmp_path / "train.json").read_text())["runs"]}
    assert runs["t1-adam"]["batches"] == runs["t6-alice-glass-abs"]["batches"] == 16
    assert (runs["t1-adam"]["evaluations"], runs["t6-alice-glass-abs"]["evaluations"]) == (16, 48)
    assert train_cmd.main(["--epochs", "2", "--no-progress"]) == 2  # needs --equal epochs
    capsys.readouterr()


def test_progress_counter_without_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    bar = Progress(3, "demo")
    for _ in range(3):
        bar.update()
    bar.close()
    assert "demo: 3/3" in capsys.readouterr().err


# -- issue 14: the command line as a new user meets it ------------------------------------------

@pytest.mark.parametrize("argv, needle", [
    (["--seeds", "a,b"], "--seeds must be a count N or a comma list"),
    (["--seeds", "x"], "--seeds must be a count N or a comma list"),
    (["--seeds", "0,-1"], "integers >= 0"),
    (["--lr", "alice=abc"], "LR must be a number, got 'abc'"),
])
def test_train_bad_values_are_usage_errors(argv, needle, capsys):
    assert train_cmd.main(argv + ["--no-progress"]) == 2
    assert needle in capsys.readouterr().err


def test_probe_negative_seed_is_a_usage_error(capsys):
    assert probe_cmd.main(["--seed", "-1", "--quick", "--no-progress"]) == 2
    assert "--seed must be >= 0" in capsys.readouterr().err


def test_train_digits_without_torch_exits_3(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)
    assert train_cmd.main(["--task", "digits", "--quick", "--no-progress"]) == 3
    assert "needs torch" in capsys.readouterr().err


def test_probe_without_matplotlib_says_no_plots(monkeypatch, tmp_path, capsys):
    # plot_report returns [] without matplotlib (its docstring); stand in for a missing one
    monkeypatch.setattr(probe_cmd, "plot_report", lambda rep, out: [])
    assert probe_cmd.main(["--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    assert "matplotlib is not installed" in capsys.readouterr().err
    assert (tmp_path / "probe.json").exists() and not list(tmp_path.glob("*.png"))


def test_progress_fallback_writes_no_carriage_return_to_a_file(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    bar = Progress(100, "x")
    for _ in range(100):
        bar.update()
    bar.close()
    err = capsys.readouterr().err
    assert "\r" not in err and err.splitlines()[-1] == "x: 100/100"
    assert len(err.splitlines()) == 10


def test_cli_torch_thread_default(monkeypatch):
    torch = pytest.importorskip("torch")
    from alice_ref.tools._tasks import CLI_THREADS_ENV, MissingDependency, cli_torch
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv(CLI_THREADS_ENV, raising=False)
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert cli_torch().get_num_threads() == 1
        monkeypatch.setenv(CLI_THREADS_ENV, "2")
        assert cli_torch().get_num_threads() == 2
        monkeypatch.setenv(CLI_THREADS_ENV, "zero")
        with pytest.raises(MissingDependency, match="integer >= 1"):
            cli_torch()
    finally:
        torch.set_num_threads(before)


# -- figures: the two-term fit, readable log axes, distinct curve styles (issues 14, 19) ------

def test_probe_prints_the_two_term_fit(tmp_path, capsys):
    rc = probe_cmd.main(["--quick", "--samples", "3", "--steps", "2", "--no-plot",
                         "--no-progress", "--out", str(tmp_path)])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    k = next(i for i, ln in enumerate(lines) if ln.startswith("two-term fit y = a t + b t^2"))
    d = json.loads((tmp_path / "probe.json").read_text())
    for g, row in zip(d["power_law"]["groups"], lines[k + 3:k + 7]):
        assert row.split()[0] == g["name"]
        tw = g["two_term"]
        assert tw is None or f"{tw['t_star']:.3g}" in row


@pytest.mark.skipif(not HAVE_MPL, reason="matplotlib not installed")
def test_two_term_figure_marks_the_crossover(tmp_path):
    from alice_ref.landscapes import SeparableGlass
    from alice_ref.tools import diagnostics as D

    # separable glass (rho 0.2) plus mean h^2 ~ 1.08: y(t) = a t + b t^2, t* ~ 0.18 inside
    # the sweep sigma/8 .. 8 sigma (as tests/test_r1_glass.py)
    n = 400
    land = SeparableGlass(n, lam=np.full(n, 20.0), s=np.full(n, 0.1),
                          h=np.linspace(0.5, 1.5, n), box=(-2.0, 2.0), seed=3)
    problem = D.from_flat(lambda th: (float(land.loss(th)), land.grad(th)), np.zeros(n), [n],
                          ["x"])
    rep = D.diagnose(problem, 0.2, n_probes=4, n_steps=2, seed=4)
    tw = rep.power_law.groups[0].two_term
    assert tw is not None and tw["a"] > 0 and tw["b"] > 0
    assert rep.power_law.scales[0] < tw["t_star"] < rep.power_law.scales[-1]
    files = probe_cmd.plot_report(rep, str(tmp_path))
    assert [os.path.basename(f) for f in files] == ["power_law.png", "two_term.png",
                                                    "coverage.png"]
    assert all(_png_ok(f) for f in files)


@pytest.mark.skipif(not HAVE_MPL, reason="matplotlib not installed")
def test_log_axis_has_two_labels_or_is_linear():
    from alice_ref.tools._output import _tick_label, log_axis, new_figure

    for lo, hi in [(1.25e-3, 8e-2), (2.5e-3, 4e-2), (1e-7, 3e-4), (3e-4, 2e-3), (1e-9, 1e-1)]:
        fig, axes = new_figure()
        ax = axes[0, 0]
        ax.plot([lo, hi], [lo, hi])
        assert log_axis(ax, "x") == "log" and log_axis(ax, "y") == "log"
        fig.canvas.draw()
        for axis, (a, b) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            shown = [t for t in axis.get_majorticklocs() if a <= t <= b]
            assert len(shown) >= 2, (lo, hi, shown)
    fig, axes = new_figure()
    ax = axes[0, 0]
    ax.plot([0.8, 1.2], [0.0, 1.0])
    ax.axvline(1.0)
    assert log_axis(ax, "x") == "linear"  # under half a decade
    assert log_axis(ax, "y") == "linear"  # a zero
    assert ax.get_xscale() == ax.get_yscale() == "linear"
    assert [_tick_label(v) for v in (0.002, 0.05, 20.0, 2e-7, 1e5)] == \
        ["0.002", "0.05", "20", "2e-7", "1e5"]


def test_training_curves_have_distinct_styles():
    from alice_ref.tools._output import line_styles

    styles = [line_styles(k, 40) for k in range(7)]  # T1-T7
    for key in ("color", "linestyle", "marker"):
        values = [str(s[key]) for s in styles]
        assert len(set(values)) == len(values), key


@pytest.mark.skipif(not HAVE_MPL, reason="matplotlib not installed")
def test_train_curves_plot_one_style_per_method(tmp_path, monkeypatch):
    captured = {}
    real = train_cmd.new_figure

    def spy(*a, **k):
        captured["fig"], captured["axes"] = real(*a, **k)
        return captured["fig"], captured["axes"]

    monkeypatch.setattr(train_cmd, "new_figure", spy)
    rc = train_cmd.main(["--quick", "--seeds", "1", "--budget", "30", "--out", str(tmp_path),
                         "--no-progress", "--optimizers", "alice,alice-rms,adam"])
    assert rc == 0 and _png_ok(tmp_path / "train_curves.png")
    lines = captured["axes"][0, 0].get_lines()
    assert len(lines) == 3
    assert len({(str(ln.get_linestyle()), ln.get_marker()) for ln in lines}) == 3
    assert captured["fig"].legends and not captured["axes"][0, 0].get_legend()
