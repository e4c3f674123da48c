"""A pytest plugin that parametrises a test over the conformance cases.

Enable it with ``-p alice_ref.conformance.pytest_plugin`` (or ``pytest_plugins = [...]`` in
the root conftest.py); then a test that takes ``alice_conformance_case`` runs once per case,
with the case name as the test id. ``--alice-cases PAT`` (repeatable; names or prefixes
ending in '*') narrows the selection. docs/porting.md shows it in use::

    from alice_ref.conformance import check

    def test_my_port(alice_conformance_case):
        check(make_step, [alice_conformance_case]).raise_for_failure()
"""

from __future__ import annotations


def pytest_addoption(parser):
    """The ``--alice-cases`` option."""
    parser.addoption("--alice-cases", action="append", default=None, metavar="PAT",
                     help="conformance cases to run (names, or prefixes ending in '*')")


def pytest_generate_tests(metafunc):
    """Parametrise ``alice_conformance_case`` over the selected cases."""
    if "alice_conformance_case" in metafunc.fixturenames:
        from alice_ref.conformance import cases
        selected = cases(metafunc.config.getoption("alice_cases"))
        metafunc.parametrize("alice_conformance_case", selected,
                             ids=[c.name for c in selected])
