"""``alice-ref prune`` / ``quantize`` end to end on a tiny setting, and the torch helpers.

The helpers' truth is algebra (masks remove exactly round(s n) lowest scores and work with
torch.nn.utils.prune; the quantizer's grid has 2^b - 1 levels and |error| <= D/2; the bit
allocation is checked against brute force); the commands are checked for their files, fields
and exit codes, not for the numbers they measure (those are in docs/saliency.md).
"""

import csv
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from alice_torch import saliency as TS  # noqa: E402

from alice_ref.tools import cli  # noqa: E402
from alice_ref.tools.saliency_common import bootstrap_ci, relative_error, spearman  # noqa: E402
from alice_ref.tools.saliency_quantize import allocate  # noqa: E402


def test_global_masks_and_torch_prune(torch_one_thread):
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    scores = {n: torch.rand(m.weight.shape, generator=g) for n, m in TS.prunable(model)}
    masks = TS.global_masks(scores, 0.4)
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    kept = torch.cat([m.reshape(-1) for m in masks.values()])
    n_prune = round(0.4 * flat.numel())
    assert int((kept == 0).sum()) == n_prune
    assert float(flat[kept == 0].max()) <= float(flat[kept == 1].min())
    TS.apply_masks(model, masks)
    for n, m in TS.prunable(model):
        assert torch.equal(m.weight_mask, masks[n])
        assert torch.all(m.weight[masks[n] == 0] == 0)
    with pytest.raises(ValueError, match="sparsity"):
        TS.global_masks(scores, 1.5)


def test_quantizer_grid():
    w = torch.randn(1000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for b in (2, 3, 5):
        d = TS.quantize_step(w, b)
        q = TS.quantize(w, b)
        levels = torch.unique(torch.round(q / d))
        assert len(levels) <= 2 ** b - 1 and float(levels.abs().max()) <= 2 ** (b - 1) - 1
        assert float((q - w).abs().max()) <= d / 2 * (1 + 1e-12)
    with pytest.raises(ValueError, match="bits"):
        TS.quantize_step(w, 1)


def test_allocate_matches_brute_force():
    rng = np.random.default_rng(2)
    bits = [2, 3, 4]
    sens = {k: {b: float(rng.random()) * 2.0 ** -b for b in bits} for k in "abc"}
    sizes = {"a": 10, "b": 30, "c": 5}
    got = allocate(sens, sizes, bits, 3.0)
    best = min((sum(sens[k][b] for k, b in zip("abc", c)), c)
               for c in np.array(np.meshgrid(bits, bits, bits)).reshape(3, -1).T.tolist()
               if sum(sizes[k] * b for k, b in zip("abc", c)) <= 3.0 * 45)
    assert sum(sens[k][got[k]] for k in "abc") == pytest.approx(best[0])
    assert allocate(sens, sizes, bits, 1.0) is None


def test_statistics():
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(np.sqrt(3) / 2)  # averaged ties
    assert relative_error([0.0, 0.0], [1.0, -1.0]) == 1.0
    v, lo, hi = bootstrap_ci(lambda a: float(np.mean(a)), [np.arange(50.0)], 200)
    assert lo < v < hi


def test_prune_command_end_to_end(tmp_path, capsys):
    rc = cli.main(["prune", "--quick", "--samples", "8", "--train-steps", "5", "--probes", "2",
                   "--sparsities", "0,50", "--finetune", "1", "--bootstrap", "10",
                   "--out", str(tmp_path), "--no-progress", "--no-plot"])
    assert rc == 0
    res = json.loads((tmp_path / "mlp_trained_prune.json").read_text())
    assert [r["criterion"] for r in res["weights"]["stats"]] == list(
        ("magnitude", "first_order", "obd", "quadratic", "glass"))
    assert res["channels"]["n"] == 64 and res["meta"]["samples"] == 8
    with open(tmp_path / "mlp_trained_weights.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and {"first", "second", "glass", "true_dL"} <= set(rows[0])
    with open(tmp_path / "mlp_trained_curves.csv") as f:
        assert len(list(csv.DictReader(f))) == 2 * 6
    assert "Spearman" in capsys.readouterr().out


def test_quantize_command_end_to_end(tmp_path):
    rc = cli.main(["quantize", "--net", "cnn", "--quick", "--train-steps", "3", "--probes", "2",
                   "--bits", "2-3", "--budgets", "2.5", "--bootstrap", "10",
                   "--out", str(tmp_path), "--no-progress", "--no-plot"])
    assert rc == 0
    res = json.loads((tmp_path / "cnn_trained_quantize.json").read_text())
    assert len(res["layers"]) == 3 * 2
    methods = {r["method"] for r in res["allocation"]}
    assert {"glass", "obd", "oracle"} <= methods
    for r in res["allocation"]:
        assert r["avg_bits"] <= 2.5 + 1e-9


def test_usage_errors():
    assert cli.main(["prune", "--sparsities", "0,120", "--no-progress"]) == 2
    assert cli.main(["quantize", "--bits", "3-2", "--no-progress"]) == 2
