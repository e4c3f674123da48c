"""``alice-ref experiment`` (alice_ref/tools/experiment/): every preset end to end on a tiny
CIFAR-format dataset the test writes, the digits fallback, resuming after an interruption, the
architecture and T3 (AdaHessian) against hand computation."""

import csv
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("alice_torch")

from alice_ref.tools.cli import main  # noqa: E402
from alice_ref.tools.experiment import protocol as P  # noqa: E402
from alice_ref.tools.experiment.cifar import load_cifar10, write_cifar_format  # noqa: E402

FAST = ["--model", "small", "--batch", "10", "--log-every", "1", "--no-progress",
        "--threads", "1"]


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    d = tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py"
    write_cifar_format(str(d), n_train_batches=2, per_batch=10, n_test=10)
    return str(d.parent)


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_cifar_reader_layout(tmp_path):
    """The reader takes the standard layout: 3072 bytes per image, R then G then B planes."""
    import pickle

    import numpy as np

    write_cifar_format(str(tmp_path), n_train_batches=1, per_batch=2, n_test=2)
    with open(tmp_path / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    xtr, ytr, _, _ = load_cifar10(str(tmp_path))
    assert xtr[1, 2, 0, 5] == raw[b"data"][1][2 * 1024 + 5]  # blue plane, row 0, column 5
    assert xtr[0, 0, 31, 31] == raw[b"data"][0][1023]
    assert ytr.tolist() == raw[b"labels"] and xtr.dtype == np.uint8


@pytest.mark.parametrize("preset, n_methods", [("methods", 7), ("naq", 8), ("power-law", 1)])
def test_every_preset_end_to_end(cifar, tmp_path, capsys, preset, n_methods):
    out = tmp_path / preset
    assert main(["experiment", preset, "--data", cifar, "--out", str(out), "--epochs", "1",
                 "--seeds", "1", *FAST]) == 0
    text = capsys.readouterr().out
    csvs = sorted(out.glob(f"{preset}_*.csv"))
    assert len(csvs) == n_methods
    for c in csvs:
        rows = _rows(c)
        assert len(rows) == 2  # 20 images / batch 10 = 2 steps, a log row per step
        assert {"train_loss", "test_acc", "evaluations"} <= set(rows[0])
    assert (out / "curves.png").stat().st_size > 10_000 and (out / "summary.md").exists()
    assert text.count("\n| ") == n_methods + 1
    meta = json.loads((out / "experiment.json").read_text())
    assert set(meta["status"].values()) == {"done"} and meta["data"] == "cifar10"
    if preset == "power-law":
        pw = _rows(out / "power_law.csv")
        assert {r["group"] for r in pw} == set(P.GROUPS)
        assert "rho_layer3" in _rows(csvs[0])[0] and (out / "power_law.png").exists()


def test_methods_use_the_scripts_hyperparameters():
    m = P.METHODS
    assert (m["T1"]["lr"], m["T2"]["lr"], m["T2"]["momentum"]) == (1e-3, 0.1, 0.9)
    assert (m["T3"]["lr"], m["T3"]["betas"], m["T3"]["eps"]) == (0.15, (0.9, 0.999), 1e-8)
    want = {"T4": ("zero", True), "T5": ("abs", False), "T6": ("abs", True),
            "T7": ("rms", False)}
    for t, (hc, gg) in want.items():
        s = m[t]
        assert (s["hess_comp"], s["grad_glass"]) == (hc, gg)
        assert (s["lr"], s["lr_max"], s["phi"], s["omega"], s["limit_method"], s["w1"],
                s["w2"], s["quick_steps"]) == (5e-3, 1e-2, 0.1, 1.0, "adam", 0.0, 0.0, 0)
    naq = P.NAQ_METHODS
    assert {(s["phi"], s["limit_method"], s["lr"], s["lr_max"]) for s in naq.values()} == {
        (1.0, "fixed", 5e-3, 5e-3), (0.1, "fixed", 5e-3, 5e-3)}
    real = P.scale_of("methods", digits=False)
    assert (real.epochs, real.drop_epoch, real.batch, real.log_every, real.seeds, real.pad,
            real.flip) == (90, 80, 100, 100, 30, 4, True)
    assert (P.scale_of("naq", False).epochs, P.scale_of("naq", False).seeds) == (60, 10)


def test_resume_after_interruption_gives_the_same_rows(cifar, tmp_path, capsys):
    """Stopped after 1 of 2 epochs, then rerun: the rows equal an uninterrupted run's, and a
    third run skips the finished ones."""
    args = ["--data", cifar, "--epochs", "2", "--seeds", "1", "--methods", "T3,T6", *FAST]
    assert main(["experiment", "methods", "--out", str(tmp_path / "a"), *args]) == 0
    assert main(["experiment", "methods", "--out", str(tmp_path / "b"), *args,
                 "--stop-after-epochs", "1"]) == 0
    assert "resume" in capsys.readouterr().err
    assert list((tmp_path / "b" / "checkpoints").glob("*_seed0.pt"))
    assert main(["experiment", "methods", "--out", str(tmp_path / "b"), *args]) == 0
    meta = json.loads((tmp_path / "b" / "experiment.json").read_text())
    assert set(meta["status"].values()) == {"done"}
    for name in ("T3", "T6"):
        a = _rows(tmp_path / "a" / f"methods_{name}.csv")
        b = _rows(tmp_path / "b" / f"methods_{name}.csv")
        strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa
        assert strip(a) == strip(b) and len(a) == 4
    assert main(["experiment", "methods", "--out", str(tmp_path / "b"), *args]) == 0
    meta = json.loads((tmp_path / "b" / "experiment.json").read_text())
    assert set(meta["status"].values()) == {"skipped"}


def test_digits_fallback_without_data(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["experiment", "methods", "--out", str(out), "--epochs", "1", "--seeds", "1",
                 "--methods", "T1,T4", "--no-plot", "--no-progress", "--threads", "1"]) == 0
    rows = _rows(out / "methods_T4.csv")
    assert len(rows) == 14 // 5 and rows[-1]["evaluations"] == str(3 * 10)  # q = 0: 3 per step
    assert json.loads((out / "experiment.json").read_text())["data"] == "digits"


def test_bad_arguments_exit_2_before_work(tmp_path, capsys):
    for argv in (["methods", "--data", str(tmp_path)], ["methods", "--methods", "T9"],
                 ["naq", "--methods", "T1"], ["methods", "--seeds", "x"],
                 ["methods", "--epochs", "0"], ["methods", "--out", "/nonexistent/dir/x"]):
        assert main(["experiment", *argv, "--no-progress"]) == 2, argv
    assert "error" in capsys.readouterr().err


def test_resnet18_architecture():
    """Parameter count from the architecture's own arithmetic: bias-free 3x3 convolutions,
    1x1 projection shortcuts where the width changes, a mask (c) and batch norm (2c) after every
    convolution pair, and the linear layer."""
    from alice_ref.tools.experiment.models import resnet18_masked

    widths, total, c = (64, 128, 256, 512), 3 * 64 * 9 + 64 + 2 * 64, 64
    for w in widths:
        for _ in range(2):
            total += c * w * 9 + w * w * 9 + 2 * (w + 2 * w)
            total += c * w if c != w else 0
            c = w
    total += 512 * 10 + 10
    m = resnet18_masked()
    assert sum(p.numel() for p in m.parameters()) == total
    masks = [p for n, p in m.named_parameters() if "mask" in n]
    assert len(masks) == 1 + 8 * 2 and all(bool((p == 1).all()) for p in masks)
    assert all(mod.bias is None for mod in m.modules() if isinstance(mod, torch.nn.Conv2d))
    assert tuple(m(torch.zeros(2, 3, 32, 32)).shape) == (2, 10)


def test_adahessian_step_by_hand():
    """On L = sum_i h_i p_i^2 / 2 (diagonal H) the Hutchinson sample |z Hz| is |h| exactly, so
    the first two steps follow Adam's formula with sqrt(v) = |h| (bias-corrected)."""
    from alice_ref.tools.experiment.adahessian import make_adahessian

    h = torch.tensor([2.0, 0.5, 4.0], dtype=torch.float64)
    p = torch.nn.Parameter(torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64))
    opt = make_adahessian([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8,
                          generator=torch.Generator().manual_seed(0))

    def closure():
        opt.zero_grad()
        loss = 0.5 * (h * p * p).sum()
        loss.backward(create_graph=True)
        return loss

    x = p.detach().clone()
    m = torch.zeros(3, dtype=torch.float64)
    for t in (1, 2):
        g = h * x
        m = 0.9 * m + 0.1 * g
        x = x - 0.1 * (m / (1 - 0.9 ** t)) / (h.abs() + 1e-8)  # v_hat = h^2 every step
        opt.step(closure)
        assert torch.allclose(p.detach(), x, rtol=1e-12, atol=1e-14)
