"""The conformance kit for porters (alice_ref.conformance, ``alice-ref conformance``).

What is checked:

- the recorded vectors are reproduced bit for bit by alice_ref/conformance/record.py, and the
  core replays every case (the official recording stays the independent check of the core:
  tests/test_alice_conformance.py);
- the kit passes three real implementations through their public APIs (the core, alice_torch,
  alice_jax) and a worked port written from the spec alone (tests/ports/), on NumPy and on
  dask.array through array-api-compat;
- the language-neutral form: export, results written in the schema, check of the results;
- deliberately wrong ports (mutants of the worked port) fail at the first batch where the
  mutation changes the state, with the changed fields named. That batch is found by running the
  correct and the mutated port side by side on the recorded gradients; for the mutants with a
  closed form (beta swap, warm-up, clip, glass sample) it is also predicted from the spec.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from alice_ref import conformance as kit
from alice_ref.conformance import record

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "ports"))
import array_api_port as port  # noqa: E402

# an untouched copy of the worked port: the mutants patch ``port``, never ``correct``
_spec = importlib.util.spec_from_file_location("array_api_port_correct",
                                               HERE / "ports" / "array_api_port.py")
correct = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(correct)

HAVE = {m: importlib.util.find_spec(m) is not None for m in ("torch", "jax", "dask")}


# -- the recorded vectors ------------------------------------------------------------------------

def test_recording_reproduces_the_packaged_file_bit_for_bit(tmp_path):
    out = tmp_path / "v.npz"
    record.write_npz(out, record.record())
    packaged = Path(kit.__file__).with_name(kit._cases.VECTORS_FILE)
    assert out.read_bytes() == packaged.read_bytes()
    assert packaged.stat().st_size < 400_000  # small package data


def test_the_cases_cover_every_mode():
    recorded = kit.recorded_cases()
    modes = {(c.config["hess_comp"], c.config["grad_glass"], c.config["limit_method"],
              c.config["quick_steps"], c.dtype) for c in recorded}
    assert len(modes) == 5 * 3 * 3 * 2 == len(recorded)  # the full product, once each
    assert any(c.config["w1"] > 0 and c.config["w2"] > 0 for c in recorded)
    assert any(c.config["phi"] is not None and c.config["omega"] != 1.0 for c in recorded)
    for c in recorded:  # every case has warm-up, update, and (q > 0) quick batches
        assert any(b.sample for b in c.batches) and c.batches[0].sample
        assert c.config["quick_steps"] == 0 or not all(b.sample for b in c.batches)
        assert c.rel == kit.REL[c.dtype] and c.batches[-1].expected["mu"].dtype == c.dtype


def test_the_core_replays_every_case():
    report = kit.check(kit.core_step)
    assert report.passed, report.summary()
    assert report.cases == 94 and report.batches == 4 * 36 + 90 * 10


def test_the_core_reference_on_array_api_strict():
    xps = pytest.importorskip("array_api_strict")
    report = kit.check(lambda c: kit.core_step(c, engine="core"), "f64-*", to_array=xps.asarray)
    assert report.passed, report.summary()


# -- the adapters through their public APIs -----------------------------------------------------

@pytest.mark.skipif(not HAVE["torch"], reason="torch not installed")
@pytest.mark.parametrize("fused", [None, False])
def test_alice_torch_passes(fused):
    sel = None if fused is None else ["official-c3", "f64-rms-glass-*", "f32-zero-*"]
    report = kit.check(lambda c: kit.torch_step(c, fused=fused), sel)
    assert report.passed, report.summary()


JAX_CASES = ["official-c2", "f64-zero-glass-sgdm-q3*", "f32-rms-glass-adam-q1*",
             "f64-abs-noglass-fixed-q0*"]


@pytest.mark.skipif(not HAVE["jax"], reason="jax not installed")
def test_alice_jax_passes():
    import jax
    jax.config.update("jax_enable_x64", True)
    report = kit.check(kit.jax_step, JAX_CASES)  # ~1.5 s a case (one jit each)
    assert report.passed, report.summary()


# -- the worked port -----------------------------------------------------------------------------

def test_worked_port_on_numpy_passes_every_case():
    report = kit.check(port.make_step)
    assert report.passed, report.summary()


DASK_CASES = ["f32-rms-glass-adam-q3*", "f64-zero-glass-fixed-q1*", "f64-abs-noglass-sgdm-q0*"]


@pytest.mark.skipif(not HAVE["dask"], reason="dask not installed (pip install dask)")
def test_worked_port_on_dask_passes():
    import dask_port
    report = kit.check(dask_port.make_step, DASK_CASES)  # dask: ~1 ms per operation
    assert report.passed, report.summary()


# -- the language-neutral form and the command line ---------------------------------------------

def test_export_results_and_check_round_trip(tmp_path):
    cases_dir, res = tmp_path / "cases", tmp_path / "res"
    names = kit.export(cases_dir, ["official-c1", "f64-rms-noglass-adam*"])
    assert names[0] == "official-c1" and len(names) == 4
    loaded = kit.load_exported(cases_dir)
    assert [c.name for c in loaded] == names
    assert kit.check(port.make_step, loaded).passed
    kit._files.run_to_results(port.make_step, cases_dir, res)
    assert kit.check_results(cases_dir, res).passed
    # a port in another language that got V wrong from batch 2 on: rewrite one results file
    with np.load(res / "official-c1.npz") as z:
        a = {k: z[k] for k in z.files}
    a["b2_V"] = a["b2_V"] * (1 + 1e-3)
    np.savez(res / "official-c1.npz", **a)
    (res / f"{names[-1]}.npz").unlink()
    report = kit.check_results(cases_dir, res)
    assert not report.passed
    f = report.first_failure
    assert (f.case, f.batch, sorted(f.fields)) == ("official-c1", 2, ["V"])
    assert "V <- EMA_beta2t(V, g0^2)" in f.message and "param " in f.message
    assert report.failures[-1].message.endswith("no results file " + str(res / f"{names[-1]}.npz"))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "alice_ref", "conformance", *map(str, args)],
                          capture_output=True, text=True, cwd=HERE.parent, timeout=120)


def test_command_line_export_run_check(tmp_path):
    d, res = tmp_path / "cases", tmp_path / "res"
    assert _cli("export", d, "--cases", "official-c0", "f32-abs-glass-*").returncode == 0
    p = _cli("run", d, "--impl", "tests/ports/array_api_port.py:make_step", "--results", res)
    assert p.returncode == 0, p.stderr
    p = _cli("check", d, "--results", res)
    assert p.returncode == 0 and "PASS: 10 cases" in p.stdout, p.stdout + p.stderr
    p = _cli("check", "--impl", "core", "--cases", "official-c3")
    assert p.returncode == 0 and "PASS: 1 cases" in p.stdout
    p = _cli("check", "--impl", "nonsense")
    assert p.returncode == 2 and "--impl must be" in p.stderr


def test_pytest_plugin_parametrises_over_cases(tmp_path):
    (tmp_path / "test_port.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(HERE / 'ports')!r})\n"
        "from array_api_port import make_step\n"
        "from alice_ref.conformance import check\n"
        "def test_port(alice_conformance_case):\n"
        "    check(make_step, [alice_conformance_case]).raise_for_failure()\n")
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-p", "alice_ref.conformance.pytest_plugin", "--alice-cases",
                        "official-*", "--alice-cases", "f64-rms-glass-adam*", "test_port.py"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert p.returncode == 0 and "7 passed" in p.stdout, p.stdout + p.stderr


# -- mutants: a wrong port fails at the first affected batch, named by field --------------------

def _clip_before_sign(d, G, lo, hi):
    xp = np
    signed = xp.where(G > 0, -d, d)
    return xp.where(signed < lo, lo, xp.where(signed < hi, signed, hi))


MUTANTS = {
    # name: {port function: replacement}
    "swap_beta2_beta3": {"weights": lambda t, c, w=port.weights: (lambda b: (b[0], b[2], b[1]))(
        w(t, c))},
    "drop_eps": {"step_of": lambda G, V, H, R, c, s=port.step_of: s(G, V, H, R,
                                                                      dict(c, eps=0.0))},
    "clip_before_sign": {"clip_and_sign": _clip_before_sign},
    "g0_for_gbar": {"glass_sample": lambda gp, gm, g0, sigma: 2.0 * (g0 - g0) ** 2 / sigma},
    "warmup_off_by_one": {"is_update": lambda t, c: t >= port.warmup_batches(c["betas"][0])},
}


def _side_by_side(case, mutated):
    """The first batch at which the mutated port's state leaves the correct port's by more
    than the case's tolerance, and the fields that moved (None if it never does)."""
    good, bad = correct.make_step(case.config), mutated(case.config)
    s_good = s_bad = kit.initial_state(case)
    for b, batch in enumerate(case.batches):
        s_good = good(s_good, batch.probes, batch.grads)
        s_bad = bad(s_bad, batch.probes, batch.grads)
        a, m = kit.read_state(s_good), kit.read_state(s_bad)
        moved = {f for f in kit.FIELDS if not kit.rel_error(m[f], a[f], case.floor) <= case.rel}
        if moved:
            return b, moved
    return None


def _predicted(name, case):
    """The first affected batch predicted from the spec, or None (not affected / no closed
    form), with a field that must be among the named ones."""
    cfg = case.config
    warm = math.floor(1 / (1 - cfg["betas"][0]))
    if name == "swap_beta2_beta3":
        b2 = cfg["betas"][1]
        b3 = 1 - (cfg["quick_steps"] + 1) * (1 - b2)
        for b in range(len(case.batches)):
            w = b / (b + 1)
            if min(b2, w) != min(b3, w):
                return b, "V"
        return None
    if name == "warmup_off_by_one":
        return (warm - 1, "mu") if warm <= len(case.batches) else None
    if name == "g0_for_gbar":
        return 0, "R"  # batch 1 is a sample step and rho_hat is not 0 in these cases
    if name == "clip_before_sign":  # clip(-d) = lo != -clip(d) where G > 0, from the update on
        for b in range(warm, len(case.batches)):
            if np.any(case.batches[b].expected["G"] > 0):
                return b, "mu"
        return None
    return "no closed form"


@pytest.fixture
def mutate(monkeypatch):
    def apply(name):
        for attr, fn in MUTANTS[name].items():
            monkeypatch.setattr(port, attr, fn)
        return port.make_step
    return apply


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_a_mutant_fails_at_the_first_affected_batch(name, mutate):
    all_cases = kit.cases()
    mutated = mutate(name)
    report = kit.check(mutated)
    assert not report.passed, f"mutant {name} passed the kit"
    expected = None
    for case in all_cases:  # the first case the mutation changes, and its first batch
        expected = _side_by_side(case, mutated)
        if expected is not None:
            expected = (case,) + expected
            break
    case, batch, moved = expected
    f = report.first_failure
    assert (f.case, f.batch) == (case.name, batch), (name, f.case, f.batch, case.name, batch)
    assert set(f.fields) == moved, (name, f.fields, moved)
    assert all(("  " + field + ": docs/spec/algorithm.md") in f.message for field in moved)
    # every case the mutation changes fails, at its own first affected batch
    failing = {r.name: r.failure for r in report.results if r.failure is not None}
    for case in all_cases:
        got = _side_by_side(case, mutated)
        assert (got is None) == (case.name not in failing), (name, case.name)
        if got is not None:
            assert failing[case.name].batch == got[0] and set(failing[case.name].fields) == got[1]
        pred = _predicted(name, case)
        if pred != "no closed form" and pred is not None and got is not None:
            assert got[0] == pred[0] and pred[1] in got[1], (name, case.name, got, pred)
    print(f"{name}: first failure {f.case} batch {f.batch} fields {sorted(f.fields)}; "
          f"{len(failing)} of {len(all_cases)} cases fail")
