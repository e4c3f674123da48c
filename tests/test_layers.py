"""The layering of docs/spec/design.md#the-package-layout, checked on the source (ast),
imports inside functions included: no module imports a higher layer, and nothing below the
adapters imports a framework.

    0 alice_ref._xp, alice_ref.checks       array helpers, argument checks
    1 alice_ref.maths                       the results R1-R8
    2 alice_ref.core                        the optimiser (config, state, one batch)
    3 alice_ref.engines                     compiled transliterations, select()
    4 drivers and adapters                  alice_ref.driver, .landscapes, .conformance,
                                            alice_torch, alice_jax
    5 alice_ref.tools                       verify, diagnostics, probe, train, the CLI

alice_ref/__init__.py (the public facade) may import layers 0-4; alice_ref/__main__.py is the
command-line entry point.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = {"alice_ref": ROOT / "alice_ref", "alice_torch": ROOT / "adapters" / "alice_torch",
           "alice_jax": ROOT / "adapters" / "alice_jax"}

LAYERS = [  # (module prefix, layer): the longest matching prefix wins
    ("alice_ref._xp", 0), ("alice_ref.checks", 0), ("alice_ref.maths", 1), ("alice_ref.core", 2),
    ("alice_ref.engines", 3), ("alice_ref.driver", 4), ("alice_ref.landscapes", 4),
    ("alice_ref.conformance", 4), ("alice_torch", 4), ("alice_jax", 4), ("alice_ref.tools", 5),
    ("alice_ref.__main__", 5), ("alice_ref", 4),  # the facade alice_ref/__init__.py
]
FRAMEWORKS = ("torch", "jax", "jaxlib", "optax", "cupy", "matplotlib", "sklearn")
ALLOWED_FRAMEWORK = {"alice_ref.engines.cuda": {"cupy"}}  # the CUDA engine imports cupy lazily


def layer_of(module: str) -> int | None:
    best = None
    for prefix, layer in LAYERS:
        if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > len(best[0])):
            best = (prefix, layer)
    return None if best is None else best[1]


def modules():
    """(module name, path) of every Python file of the three packages."""
    for pkg, base in SOURCES.items():
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield ".".join([pkg, *parts]), path


def imports(module: str, path: pathlib.Path):
    """(line, imported module) for every import statement, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            yield node.lineno, target
            for a in node.names:  # `from alice_ref import tools` imports alice_ref.tools
                yield node.lineno, f"{target}.{a.name}"


def violations():
    out = []
    for module, path in modules():
        own = layer_of(module)
        assert own is not None, f"{module} has no layer: add it to LAYERS"
        for line, target in imports(module, path):
            where = f"{path.relative_to(ROOT)}:{line}"
            top = target.split(".")[0]
            if top in ("alice_ref", "alice_torch", "alice_jax"):
                other = layer_of(target)
                if other is not None and other > own and not target.startswith(module + "."):
                    out.append(f"{where}: {module} (layer {own}) imports {target} "
                               f"(layer {other})")
            elif top in FRAMEWORKS and own < 4 and top not in ALLOWED_FRAMEWORK.get(module, ()):
                out.append(f"{where}: {module} (layer {own}) imports the framework {top}")
    return out


def test_no_lower_layer_imports_a_higher_one():
    bad = violations()
    assert not bad, "layering violations:\n" + "\n".join(bad)


def test_every_module_has_a_layer_and_the_layers_are_populated():
    seen = {layer_of(m) for m, _ in modules()}
    assert seen == {0, 1, 2, 3, 4, 5}


@pytest.mark.parametrize("module, target, bad", [
    ("alice_ref.maths.step", "alice_ref.core", True),
    ("alice_ref.core.batch", "alice_ref.engines.cpu", True),
    ("alice_ref.engines.cpu", "alice_ref.core.batch", False),
    ("alice_ref.driver", "alice_ref.tools.verify", True),
    ("alice_torch.optimizer", "alice_ref.engines", False),
    ("alice_ref", "alice_ref.tools", True),
])
def test_the_checker_itself(module, target, bad):
    """The rule on hand-made pairs, so that a broken layer table cannot pass silently."""
    assert (layer_of(target) > layer_of(module)) is bad


def test_relative_imports_are_resolved(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("from ..core import batch\nfrom . import glass\n")
    got = [t for _, t in imports("alice_ref.maths.x", f)]
    assert got == ["alice_ref.core", "alice_ref.core.batch", "alice_ref.maths",
                   "alice_ref.maths.glass"]
