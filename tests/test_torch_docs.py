"""The examples of docs/torch.md marked ``<!-- test -->`` run and do what they claim."""

import pathlib
import re

import pytest

torch = pytest.importorskip("torch")

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "torch.md"
BLOCKS = re.findall(r"<!-- test -->\s*```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one intra-op thread is fastest and immune to a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_docs_have_runnable_examples():
    assert BLOCKS


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_docs_example_runs(code):
    exec(compile(code, str(DOC), "exec"), {"__name__": "docs_torch"})  # noqa: S102 (our docs)
