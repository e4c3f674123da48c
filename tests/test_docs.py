"""The documentation site: it builds with warnings as errors, it covers every result and every
public name of the stable API, and its examples run.

(a) ``mkdocs build --strict`` in a subprocess (skipped only where mkdocs is not installed:
    ``pip install -e ".[docs]"``). Strict mode turns broken links and anchors, pages missing
    from the nav and mkdocstrings/griffe docstring warnings into failures.
(b) R1..R8 and each public name of docs/spec/api.md appear in the docs' Markdown sources.
(c) The top-level fenced ``python`` blocks of docs/index.md, docs/adapters.md and
    docs/porting.md run as written, each in a fresh namespace (they assert what they claim).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"

RESULTS = [f"R{k}" for k in range(1, 9)]

# docs/spec/api.md: the stable public surface (core, landscapes, adapters, command line).
PUBLIC_NAMES = [
    "GLASS_COEFF", "ALPHA_COEFF",
    "hessian_diag", "curvature_magnitude", "glass_density", "glass_kernel",
    "glass_density_from_line", "rademacher_variance",
    "loss_deviation_bound", "effective_curvature", "optimal_step", "bounded_step", "exact_phi",
    "SeparableGlass", "Quadratic", "ReluTeacherStudent",
    "alice_torch.Alice", "attributes", "export_mu", "import_mu",
    "alice_jax.alice", "center",
    "verify", "probe", "train",
]

# Pages whose examples are executed (top-level ```python fences only; indented fences inside
# list items are fragments such as the conftest.py edits of porting.md).
EXAMPLE_PAGES = ["index.md", "adapters.md", "porting.md"]
FENCE = re.compile(r"^```python\n(.*?)^```", flags=re.DOTALL | re.MULTILINE)


def _sources() -> str:
    """The docs pages, without the specification (docs/spec/ lists the names it requires)."""
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.rglob("*.md"))
                     if "spec" not in p.relative_to(DOCS).parts[:1])


# -- (a) the site builds, warnings are errors ---------------------------------------------------

@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason='mkdocs not installed (pip install -e ".[docs]")')
def test_site_builds_strict(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(MKDOCS_YML),
         "--site-dir", str(tmp_path / "site")],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    site = tmp_path / "site"
    for page in ["index.html", "api/index.html", "adapters/index.html", "porting/index.html",
                 *[f"results/r{k}/index.html" for k in range(1, 9)]]:
        assert (site / page).is_file(), page
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for ident in ("alice_ref.maths.estimators.glass_density", "alice_ref.maths.step.optimal_step",
                  "alice_ref.maths.bounds.GLASS_COEFF", "alice_ref.maths.step.ALPHA_COEFF",
                  "alice_ref.landscapes.SeparableGlass", "alice_torch.Alice", "alice_jax.alice"):
        assert f'id="{ident}"' in api, f"API reference lacks {ident}"
    # Sphinx roles in docstrings render as links or code, never raw (docs/_ext: SphinxRoles)
    raw = re.findall(r":(?:func|mod|class|meth|data|attr|exc):(?:<code>|`)", api)
    assert not raw, f"{len(raw)} raw Sphinx roles on the API page"
    assert 'class="autorefs autorefs-internal" title="warmup_length"' in api


# -- (b) coverage of the results and of the public names -----------------------------------------

def test_every_result_has_a_page_and_is_in_the_sources():
    text = _sources()
    for r in RESULTS:
        assert re.search(rf"\b{r}\b", text), r
        page = DOCS / "results" / f"{r.lower()}.md"
        assert page.is_file(), page
        body = page.read_text(encoding="utf-8")
        assert body.startswith(f"# {r} "), f"{page} must start with its title '# {r} ...'"
        for section in ("## Statement", "## Assumptions", "## Derivation sketch", "## Code",
                        "## Tests", "## verify rows", "## Differences"):
            assert section in body, f"{page} lacks a '{section}' section"


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_public_name_is_documented(name):
    assert re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", _sources()), \
        f"{name} (docs/spec/api.md) appears nowhere in docs/ outside docs/spec/"


def test_result_pages_name_existing_tests():
    """Every tests/test_*.py module and test function a result page names exists."""
    tests_dir = ROOT / "tests"
    for page in sorted((DOCS / "results").glob("r*.md")):
        body = page.read_text(encoding="utf-8")
        for module in set(re.findall(r"tests/(test_\w+)\.py", body)):
            path = tests_dir / f"{module}.py"
            assert path.is_file(), f"{page.name} names missing {path}"
        for module, func in re.findall(r"tests/(test_\w+)\.py::(test_\w+)", body):
            src = (tests_dir / f"{module}.py").read_text(encoding="utf-8")
            assert re.search(rf"^def {func}\(", src, flags=re.MULTILINE), \
                f"{page.name}: {module}::{func}"
        # bare test names listed after a module: each must be defined in some test module
        all_src = "\n".join(p.read_text(encoding="utf-8") for p in tests_dir.glob("test_*.py"))
        for func in set(re.findall(r"`(test_\w+)`", body)):
            assert re.search(rf"^\s*def {func}\(", all_src, flags=re.MULTILINE), \
                f"{page.name}: {func}"


# -- (c) the examples run -------------------------------------------------------------------------

def _examples():
    out = []
    for name in EXAMPLE_PAGES:
        path = DOCS / name
        if path.is_file():
            for i, code in enumerate(FENCE.findall(path.read_text(encoding="utf-8"))):
                out.append(pytest.param(path, code, id=f"{name}-{i}"))
    return out


EXAMPLES = _examples()


def test_example_pages_have_examples():
    pages = {p.values[0].name for p in EXAMPLES}
    assert {"index.md", "adapters.md"} <= pages


@pytest.mark.parametrize("path,code", EXAMPLES)
def test_docs_example_runs(path, code):
    for optional in ("array_api_strict",):  # the test extra; cupy examples skip themselves
        if f"import {optional}" in code and importlib.util.find_spec(optional) is None:
            pytest.skip(f"{optional} not installed")
    exec(compile(code, str(path), "exec"), {"__name__": "docs_example"})  # noqa: S102 (our docs)
