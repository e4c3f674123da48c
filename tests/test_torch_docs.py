"""The examples of docs/torch.md marked ``<!-- test -->`` run and do what they claim."""

import pathlib
import re

import pytest

torch = pytest.importorskip("torch")

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "torch.md"
BLOCKS = re.findall(r"<!-- test -->\s*```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_docs_have_runnable_examples():
    assert BLOCKS


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_docs_example_runs(code):
    exec(compile(code, str(DOC), "exec"), {"__name__": "docs_torch"})  # noqa: S102 (our docs)
