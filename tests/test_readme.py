"""The README's quick start and examples stay true: its python blocks run and check themselves."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_quick_start_commands():
    text = README.read_text()
    quick = text.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = [ln.split("#")[0].strip() for ln in quick.strip().splitlines()]
    assert lines == ['pip install -e . && alice-ref verify',
                     'pip install -e ".[all]" && python -m pytest']
    ci = (README.parent / ".ci" / "run").read_text()
    assert lines[1] in ci.splitlines()  # CI runs exactly the README's test command


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_example_runs(i):
    block = BLOCKS[i]
    for mod in ("torch", "jax", "optax"):
        if re.search(rf"^import .*\b{mod}\b|^from {mod}", block, re.M):
            pytest.importorskip(mod)
    exec(compile(block, f"README.md block {i}", "exec"), {"__name__": "readme"})
