"""The ``alice-ref`` command line and ``alice-ref verify`` (alice_ref/tools/: cli.py, verify/).

verify --quick must pass on the unmodified core, report every result R1-R8 in the documented
JSON schema, use only the base install, and fail (exit 1) when a core function is broken.
"""

import json
import math
import shutil
import subprocess
import sys

import pytest

import alice_ref
from alice_ref.tools import verify
from alice_ref.tools.cli import SUBCOMMANDS, build_parser, main

RESULTS = [f"R{k}" for k in range(1, 9)]
KEYS = {"result", "claim", "predicted", "measured", "tolerance", "verdict", "relation", "anchor"}


def _check_schema(rows):
    assert isinstance(rows, list)
    for row in rows:
        assert set(row) == KEYS, row
        assert row["result"] in RESULTS
        assert isinstance(row["claim"], str) and row["claim"]
        for k in ("predicted", "measured", "tolerance"):
            assert isinstance(row[k], (float, str)), (k, row)
            if isinstance(row[k], float):
                assert math.isfinite(row[k])
        assert row["verdict"] in ("pass", "fail")
        assert row["relation"] in ("=", "<=", ">=", "min")
        assert isinstance(row["anchor"], str) and row["anchor"], row


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One in-process `alice-ref verify --quick --json PATH` run: (exit code, rows, stdout)."""
    path = tmp_path_factory.mktemp("verify") / "rows.json"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["verify", "--quick", "--json", str(path)])
    return rc, json.loads(path.read_text(encoding="utf-8")), buf.getvalue()


def test_quick_passes_in_process(quick_run):
    rc, rows, _ = quick_run
    failed = [r for r in rows if r["verdict"] != "pass"]
    assert rc == 0, failed
    assert not failed
    assert len(rows) >= 12
    assert set(RESULTS) <= {r["result"] for r in rows}


def test_json_schema_and_table(quick_run):
    _, rows, out = quick_run
    _check_schema(rows)
    header = out.splitlines()[0].split()
    assert header == ["result", "anchor", "claim", "measured", "rel", "predicted", "tolerance",
                      "verdict"]
    assert f"{len(rows)} rows: {len(rows)} pass, 0 fail" in out


def test_monte_carlo_rows_state_their_tolerance(quick_run):
    _, rows, _ = quick_run
    mc = [r for r in rows if "5 SE" in str(r["tolerance"])]
    exact = [r for r in rows if "rounding" in str(r["tolerance"])]
    assert len(mc) >= 8 and len(exact) >= 8
    # the optimiser rows asked for: R7 exactness in the loop, R7 lag, R8 evaluation count
    claims = " ".join(r["claim"] for r in rows)
    assert "exact_phi" in claims and "nesterov_lag" in claims and "sample_cost" in claims


def test_subprocess_base_install_only(tmp_path):
    """A fresh interpreter runs verify --quick without importing torch, jax or matplotlib."""
    path = tmp_path / "rows.json"
    code = (
        "import sys\n"
        "from alice_ref.tools.cli import main\n"
        f"rc = main(['verify', '--quick', '--seed', '3', '--json', {str(path)!r}])\n"
        "heavy = [m for m in ('torch', 'jax', 'matplotlib', 'tqdm') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "HEAVY []" in proc.stdout
    rows = json.loads(path.read_text(encoding="utf-8"))
    _check_schema(rows)
    assert all(r["verdict"] == "pass" for r in rows)


def test_python_dash_m_and_console_script_help():
    proc = subprocess.run([sys.executable, "-m", "alice_ref", "verify", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--quick" in proc.stdout and "--json" in proc.stdout and "--seed" in proc.stdout
    exe = shutil.which("alice-ref") or shutil.which("alice-ref", path=str(
        __import__("pathlib").Path(sys.executable).parent))
    if exe is None:
        pytest.skip("alice-ref console script not on PATH")
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "verify" in proc.stdout


def test_help_and_usage_errors(capsys):
    for argv in (["--help"], ["verify", "--help"], ["--version"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
    assert main([]) == 2  # no subcommand: help on stderr, usage error
    for argv in (["verify", "--only", "R9"], ["verify", "--seed", "-1"], ["nosuch"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
    err = capsys.readouterr().err
    assert "R9" in err and "--seed" in err


def test_registry_builds_every_subcommand():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(SUBCOMMANDS) <= set(sub.choices)


def _run_only(tmp_path, only, capsys):
    path = tmp_path / "rows.json"
    rc = main(["verify", "--quick", "--only", only, "--json", str(path)])
    capsys.readouterr()
    return rc, json.loads(path.read_text(encoding="utf-8"))


def _scaled(fn, factor):
    return lambda *a, **k: fn(*a, **k) * factor


@pytest.mark.parametrize("module, name, factor, only, marker", [
    (alice_ref.maths.estimators, "glass_density", 1.25, "R3", "glass_density 2(("),
    (alice_ref.maths.step, "effective_curvature", 1.01, "R5", "first-order condition"),
    (alice_ref.maths.schedule, "sample_cost", 1.1, "R8", "quick_steps q = 3"),
    (alice_ref.maths.nesterov, "nesterov_lag", 1.001, "R7", "nesterov_lag"),
    (alice_ref.maths.bounds, "loss_deviation_bound", 0.9, "R4", "Brownian limit"),
])
def test_broken_core_fails(monkeypatch, tmp_path, capsys, module, name, factor, only, marker):
    """A core function returning a wrong value makes its row fail and the exit status 1."""
    rc, rows = _run_only(tmp_path, only, capsys)
    assert rc == 0 and all(r["verdict"] == "pass" for r in rows)
    monkeypatch.setattr(module, name, _scaled(getattr(module, name), factor))
    rc, rows = _run_only(tmp_path, only, capsys)
    assert rc == 1
    _check_schema(rows)
    hit = [r for r in rows if marker in r["claim"]]
    assert hit and all(r["verdict"] == "fail" for r in hit), hit
    assert {r["result"] for r in rows} == {only}


def test_exception_in_core_gives_failing_row(monkeypatch, tmp_path, capsys):
    def boom(*args, **kwargs):
        raise RuntimeError("deliberately broken")

    monkeypatch.setattr(alice_ref.maths.nesterov, "exact_phi", boom)
    rc, rows = _run_only(tmp_path, "R7", capsys)
    assert rc == 1
    _check_schema(rows)
    bad = [r for r in rows if r["verdict"] == "fail"]
    assert len(bad) == 1 and "deliberately broken" in bad[0]["claim"]


def test_run_checks_is_seeded():
    a = verify.run_checks(seed=5, quick=True, only={"R3"})
    b = verify.run_checks(seed=5, quick=True, only={"R3"})
    c = verify.run_checks(seed=6, quick=True, only={"R3"})
    assert [r.measured for r in a] == [r.measured for r in b]
    assert [r.measured for r in a] != [r.measured for r in c]


# -- paper anchors, relations, claims (issue 19) -------------------------------------------------

ALG_STEPS = {"2": 11, "3": 10}  # the official algorithm's numbered steps (docs/spec/algorithm.md)


def test_every_row_names_result_anchor_and_relation(quick_run):
    """Each row names its result, an abstract claim A1-A8 or an algorithm step, and a relation;
    one-sided tolerances go with '<=' / '>=' rows only, so a bound is never a bare prediction."""
    import re

    from alice_ref.tools.verify.paper import ABSTRACT

    _, rows, _ = quick_run
    for r in rows:
        claims = set(re.findall(r"\bA\d\b", r["anchor"]))
        algs = re.findall(r"Alg\. (\d), steps? (\d+)(?:-(\d+))?", r["anchor"])
        assert claims or algs or "docs/spec/" in r["anchor"], r
        assert claims <= set(ABSTRACT), r
        for alg, lo, hi in algs:
            assert 1 <= int(lo) <= int(hi or lo) <= ALG_STEPS[alg], r
        one_sided = "one-sided" in str(r["tolerance"])
        assert one_sided == (r["relation"] in ("<=", ">=")), r
    assert {r["relation"] for r in rows} == {"=", "<=", ">=", "min"}
    assert {a for r in rows for a in re.findall(r"\bA\d\b", r["anchor"])} == set(ABSTRACT)


def test_claims_read_as_one_clean_sentence(quick_run):
    """A capital first letter, one final full stop, no doubled blanks, no garbled fragments such
    as 'sqrt(2/pi) for Gaussian z < 1 for Rademacher'; parentheses balance."""
    _, rows, _ = quick_run
    for r in rows:
        c = r["claim"]
        assert c[0].isupper() or "_" in c.split()[0], c  # a sentence, or a code name first
        assert c.endswith(".") and not c.endswith(".."), c
        assert "  " not in c and " ," not in c, c
        assert c.count("(") == c.count(")"), c
        assert " z < 1 " not in c, c


def test_paper_map_doc_lists_every_row(quick_run):
    """docs/paper-map.md names every result with its abstract claims and every check title."""
    import pathlib

    text = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "paper-map.md").read_text(
        encoding="utf-8")
    for _, title, _ in verify.CHECKS:
        assert title in text, title
    for result in RESULTS:
        assert f"| {result} " in text, result
    for claim in verify.ABSTRACT:
        assert f"**{claim}**" in text, claim


def test_bad_paths_fail_before_any_work(monkeypatch, tmp_path, capsys):
    """--json into a missing directory, --report onto a file: exit 2 before a check runs."""
    def boom(*a, **k):
        raise AssertionError("a check ran before the arguments were checked")

    monkeypatch.setattr(verify, "run_checks", boom)
    (tmp_path / "file").write_text("x")
    for argv in (["--json", "/nonexistent/x.json"], ["--json", str(tmp_path)],
                 ["--report", str(tmp_path / "file")],
                 ["--report", str(tmp_path / "missing" / "deeper")]):
        assert main(["verify", "--quick", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert "error" in err and argv[0] in err, err


def test_progress_on_stderr_when_piped(tmp_path):
    """With stdout and stderr piped (not terminals) each check still reports on stderr."""
    proc = subprocess.run([sys.executable, "-m", "alice_ref", "verify", "--quick", "--only",
                           "R5,R6"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("verify [")]
    assert [ln.split("]")[0] for ln in lines] == ["verify [1/2", "verify [2/2"], proc.stderr
    assert "\r" not in proc.stderr and "verify [" not in proc.stdout
    quiet = subprocess.run([sys.executable, "-m", "alice_ref", "verify", "--quick", "--only",
                            "R6", "--no-progress"], capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0 and "verify [" not in quiet.stderr


def test_report_folder(tmp_path, capsys):
    """--report writes the Markdown table, the JSON rows and one figure per result that ran,
    and the figures come from the rows' own samples (R8: the counted cost per q)."""
    out = tmp_path / "rep"
    assert main(["verify", "--quick", "--only", "R3,R5,R8", "--report", str(out),
                 "--no-progress"]) == 0
    capsys.readouterr()
    names = sorted(p.name for p in out.iterdir())
    assert names == ["verify.json", "verify.md", "verify_r3.png", "verify_r5.png",
                     "verify_r8.png"]
    md = (out / "verify.md").read_text(encoding="utf-8")
    doc = json.loads((out / "verify.json").read_text(encoding="utf-8"))
    assert md.count("\n| R") == len(doc["rows"]) + 3  # every row, and the 3 results' anchors
    assert "![R5](verify_r5.png)" in md and "&ge;" in md  # R3's 'abs' row: a lower bound
    for p in out.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
    samples = {}
    verify.run_checks(quick=True, only={"R8"}, samples=samples)
    cost = samples["R8"]["cost"]
    assert cost[:, 1].tolist() == [(3 + q) / (q + 1) for q in cost[:, 0]]  # R8, by algebra
