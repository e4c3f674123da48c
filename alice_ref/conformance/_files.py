"""The language-neutral form of the kit: cases exported as .npz + JSON, results read back.

Schema (README.md beside this module, "Exported cases"): ``DIR/cases.json`` lists the cases;
``DIR/<name>.npz`` holds one case's arrays, flat over all parameters (C order, concatenated);
a port writes ``RESULTS/<name>.npz`` with its state after every batch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from alice_ref.conformance._cases import FIELDS, Batch, Case
from alice_ref.conformance._cases import cases as _all_cases
from alice_ref.conformance._check import (
    CaseResult,
    Failure,
    Report,
    _diff,
    compare_state,
    initial_state,
    read_state,
)

__all__ = ["SCHEMA", "export", "load_exported", "write_results", "run_to_results",
           "check_results"]

#: The schema name and version written into cases.json.
SCHEMA = {"format": "alice-ref-conformance", "version": 1}


def _flat(xs):
    return np.concatenate([np.asarray(x).reshape(-1) for x in xs]) if xs else np.zeros(0)


def export(directory, cases=None) -> list:
    """Write the cases to ``directory`` (created if needed) as cases.json + one .npz per case.

    Args:
        directory: the output folder.
        cases: a selection as :func:`alice_ref.conformance.cases` takes, or Case objects
            (default: every case).

    Returns:
        The list of case names written.
    """
    if cases is None or isinstance(cases, str) or callable(cases) or (
            isinstance(cases, (list, tuple)) and cases and isinstance(cases[0], str)):
        cases = _all_cases(cases)
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    index = []
    for case in cases:
        arrays = {"params0": _flat(case.params0),
                  "expected_t": np.array([b.t for b in case.batches], np.int64)}
        for i, b in enumerate(case.batches):
            if b.sample:
                arrays[f"b{i}_z"] = _flat(b.probes)
                if b.u is not None:
                    arrays[f"b{i}_u"] = np.asarray(b.u)
            arrays[f"b{i}_grads"] = np.stack([_flat(g) for g in b.grads])
            for f in FIELDS:
                arrays[f"b{i}_{f}"] = b.expected[f]
        np.savez(d / f"{case.name}.npz", **arrays)
        index.append({"name": case.name, "source": case.source, "dtype": case.dtype,
                      "config": {k: (list(v) if k == "betas" else v)
                                 for k, v in case.config.items()},
                      "param_shapes": [list(s) for s in case.param_shapes],
                      "batches": len(case.batches),
                      "sample_batches": [b.t for b in case.batches if b.sample],
                      "tolerance": {"rel": case.rel, "floor": case.floor,
                                    "derivation": case.derivation},
                      "file": f"{case.name}.npz"})
    meta = dict(SCHEMA, fields=list(FIELDS), cases=index)
    (d / "cases.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return [c["name"] for c in index]


def load_exported(directory) -> list:
    """Read an exported folder back as Case objects (what ``check`` compares with).

    Raises:
        ValueError: no cases.json, or one of another format or version.
    """
    d = Path(directory)
    try:
        meta = json.loads((d / "cases.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{d} has no cases.json: write it with `alice-ref conformance export "
                         f"{d}`") from None
    if meta.get("format") != SCHEMA["format"] or meta.get("version") != SCHEMA["version"]:
        raise ValueError(f"{d / 'cases.json'} is not an {SCHEMA['format']} version "
                         f"{SCHEMA['version']} file")
    out = []
    for e in meta["cases"]:
        shapes = tuple(tuple(s) for s in e["param_shapes"])
        proto = Case(e["name"], e["source"], e["dtype"], dict(e["config"]), shapes, (), (),
                     e["tolerance"]["rel"], e["tolerance"]["floor"], e["tolerance"]["derivation"])
        proto.config["betas"] = tuple(proto.config["betas"])
        with np.load(d / e["file"]) as z:
            a = {k: z[k] for k in z.files}
        batches = []
        for i in range(e["batches"]):
            sample = f"b{i}_z" in a
            batches.append(Batch(t=int(a["expected_t"][i]), sample=sample,
                                 u=a.get(f"b{i}_u"),
                                 probes=proto.split(a[f"b{i}_z"]) if sample else None,
                                 grads=tuple(proto.split(g) for g in a[f"b{i}_grads"]),
                                 expected={f: a[f"b{i}_{f}"] for f in FIELDS}))
        out.append(Case(proto.name, proto.source, proto.dtype, proto.config, shapes,
                        tuple(proto.split(a["params0"])), tuple(batches), proto.rel,
                        proto.floor, proto.derivation))
    return out


def write_results(directory, name: str, states) -> Path:
    """Write one case's results: ``states`` after every batch (port states, or
    :func:`alice_ref.conformance.read_state` dicts) to ``directory/<name>.npz`` with keys
    ``t`` (int64, one per batch) and ``b{b}_{field}`` (flat float arrays)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    arrays, ts = {}, []
    for b, st in enumerate(states):
        got = st if isinstance(st, dict) and isinstance(st.get("mu"), np.ndarray) \
            else read_state(st)
        ts.append(-1 if got["t"] is None else got["t"])
        for f in FIELDS:
            arrays[f"b{b}_{f}"] = got[f]
    arrays["t"] = np.array(ts, np.int64)
    np.savez(d / f"{name}.npz", **arrays)
    return d / f"{name}.npz"


def run_to_results(make_step, cases_dir, results_dir, *, to_array=None) -> list:
    """Run ``make_step`` over an exported folder and write its results in the schema (what a
    port in another language does with its own code). A step that raises ends its case's
    results there. Returns the names written."""
    names = []
    for case in load_exported(cases_dir):
        conv = (lambda a: a) if to_array is None else to_array
        states = []
        try:
            step = make_step(dict(case.config))
            state = initial_state(case, to_array)
            for batch in case.batches:
                probes = None if batch.probes is None else [conv(np.array(z))
                                                           for z in batch.probes]
                grads = tuple([conv(np.array(g)) for g in gs] for gs in batch.grads)
                state = step(state, probes, grads)
                states.append(read_state(state))
        except Exception:  # noqa: BLE001 - the results stop at the failing batch
            pass
        write_results(results_dir, case.name, states)
        names.append(case.name)
    return names


def check_results(cases_dir, results_dir) -> Report:
    """Compare a port's results folder with an exported cases folder.

    Every case of ``cases_dir/cases.json`` needs ``results_dir/<name>.npz``; a missing file or
    batch, a wrong t, or a field over the case's tolerance fails the case at that batch.

    Returns:
        A :class:`alice_ref.conformance.Report`, as :func:`alice_ref.conformance.check` gives.
    """
    report = Report()
    for case in load_exported(cases_dir):
        res = CaseResult(case.name, case.source, case.dtype, 0, dict.fromkeys(FIELDS, 0.0),
                         case.rel)
        report.results.append(res)
        path = Path(results_dir) / f"{case.name}.npz"
        if not os.path.exists(path):
            res.failure = Failure(case.name, 0, 1, case.batches[0].sample, {},
                                  f"case {case.name}: no results file {path}")
            continue
        with np.load(path) as z:
            a = {k: z[k] for k in z.files}
        ts = a.get("t", np.zeros(0, np.int64))
        for b, batch in enumerate(case.batches):
            keys = [f"b{b}_{f}" for f in FIELDS]
            if not all(k in a for k in keys) or b >= len(ts):
                res.failure = Failure(case.name, b, batch.t, batch.sample, {},
                                      f"case {case.name}, batch {b} (t = {batch.t}): missing "
                                      f"from the results (they stop after {b} batches)")
                break
            got = {"t": int(ts[b]), **{f: np.asarray(a[f"b{b}_{f}"], np.float64).reshape(-1)
                                       for f in FIELDS}}
            errs, bad = compare_state(case, b, got)
            res.batches = b + 1
            for f, e in errs.items():
                res.worst[f] = max(res.worst[f], e)
            if bad:
                res.failure = Failure(case.name, b, batch.t, batch.sample, bad,
                                      _diff(case, b, batch, got, bad))
                break
    return report
