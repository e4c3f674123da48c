"""One test per claim of ``alice-ref verify`` (results R1-R8, alice_ref/tools/verify/).

Every registered check of :data:`alice_ref.tools.verify.CHECKS` runs once, in quick mode with a
fixed seed (cached, at collection, so that each of its rows gets its own test id such as
``R1-separable-0``: result, check, row index); each test asserts that its row passes, and a
failure names the claim, the prediction, the measurement and the tolerance.
"""

import functools
import re
from dataclasses import asdict

import pytest

from alice_ref.tools import verify

SEED = 0  # the default of ``alice-ref verify --seed``


@functools.lru_cache(maxsize=None)
def rows_of(index):
    """The rows of check ``CHECKS[index]``, quick mode, seed SEED (run once per session)."""
    return tuple(verify.run_check(verify.CHECKS[index], seed=SEED, quick=True))


def check_name(check):
    """A stable readable name: the result, then the check function's name without its '_rK_'
    prefix (the title when nothing is left), e.g. 'R1-separable', 'R5-optimal-step'."""
    result, title, fn = check
    name = re.sub(rf"^_{result.lower()}_?", "", fn.__name__) or title
    return f"{result}-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


CLAIMS = [pytest.param(i, k, id=f"{check_name(check)}-{k}")
          for i, check in enumerate(verify.CHECKS) for k in range(len(rows_of(i)))]


@pytest.mark.parametrize("index, k", CLAIMS)
def test_claim(index, k):
    """The row passes: its measurement is within its tolerance of its prediction."""
    result = verify.CHECKS[index][0]
    row = rows_of(index)[k]
    assert row.result == result
    assert row.verdict == "pass", (
        f"{row.result} claim failed: {row.claim}\n"
        f"  predicted {row.predicted!r}, measured {row.measured!r}, tolerance {row.tolerance}")


def test_claim_ids_are_unique_and_cover_every_result():
    names = [check_name(c) for c in verify.CHECKS]
    assert len(set(names)) == len(names), names
    assert {c[0] for c in verify.CHECKS} == set(verify.RESULTS)


def test_per_check_rows_are_the_rows_of_run_checks():
    """Running the checks one by one gives the rows, in order, of one run_checks call."""
    whole = verify.run_checks(seed=SEED, quick=True)
    split = [row for i in range(len(verify.CHECKS)) for row in rows_of(i)]
    assert [asdict(r) for r in split] == [asdict(r) for r in whole]
