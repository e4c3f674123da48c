"""Griffe extensions for the API pages: doctest blocks as console code, Sphinx roles as links.

alice_ref's docstrings are prose with formulas and ``>>>`` examples (run by doctest), without
Google/NumPy "Examples:" sections. Markdown would read a bare ``>>>`` line as a nested block
quote and ``[...]`` output lines as reference links; this extension fences each doctest block
(from a ``>>>`` line to the next blank line) as ```` ```pycon ```` before mkdocstrings renders
it. It changes only the text griffe hands to mkdocstrings, never the source files.
Loaded by mkdocs.yml (plugins > mkdocstrings > handlers > python > options > extensions).
"""

from __future__ import annotations

import re

import griffe


def fence_doctests(text: str) -> str:
    """Wrap each doctest block of ``text`` in a ```` ```pycon ```` fence (idempotent)."""
    lines = text.split("\n")
    out: list[str] = []
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        if in_fence or not stripped.startswith(">>>"):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(stripped)]
        j = i
        while j < len(lines) and lines[j].strip():
            j += 1
        if out and out[-1].strip():
            out.append("")
        out.append(f"{indent}```pycon")
        out.extend(lines[i:j])
        out.append(f"{indent}```")
        i = j
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    """Fence the doctest blocks of every docstring of a loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        seen: set[int] = set()

        def visit(obj) -> None:
            if id(obj) in seen:
                return
            seen.add(id(obj))
            if obj.docstring is not None:
                obj.docstring.value = fence_doctests(obj.docstring.value)
            for member in obj.members.values():
                if not member.is_alias:
                    visit(member)

        visit(pkg)


_ROLE = re.compile(r":(?:py:)?(?:func|mod|class|meth|data|attr|exc|obj):`~?\.?([A-Za-z_][\w.]*)`")


def _target(obj, name: str, root):
    """The object ``name`` denotes as seen from ``obj`` (its scopes outwards, then as a full
    path), alias targets resolved, or None."""
    candidates = []
    scope = obj
    while scope is not None:
        candidates.append(f"{scope.path}.{name}")
        scope = scope.parent
    candidates.append(name)
    for c in candidates:
        found = _lookup(root, c)
        if found is not None:
            try:
                return found.final_target if found.is_alias else found
            except Exception:  # noqa: BLE001 - an alias griffe cannot resolve
                return None
    return None


def _rendered(target, documented: tuple) -> bool:
    """Whether the API pages render ``target``: a listed module, or a public member of one."""
    if target.is_module:
        return target.path in documented
    return (not target.name.startswith("_") and target.module.path in documented
            and target.parent is not None and not target.parent.name.startswith("_"))


def _lookup(root, path: str):
    head, _, rest = path.partition(".")
    if head != root.name:
        return None
    obj = root
    for part in rest.split(".") if rest else ():
        try:
            obj = obj.members[part]
        except (KeyError, Exception):  # noqa: BLE001
            return None
    return obj


def link_roles(text: str, obj, root, documented: tuple) -> str:
    """Sphinx roles (:func:`x`) as Markdown: an autorefs cross-reference where ``x`` resolves
    to an object the API pages render, else inline code (never a raw role)."""
    def sub(m):
        name = m.group(1)
        target = _target(obj, name, root)
        if target is not None and _rendered(target, documented):
            return f"[`{name}`][{target.path}]"
        return f"`{name}`"
    return _ROLE.sub(sub, text)


class SphinxRoles(griffe.Extension):
    """Turn the Sphinx roles of every docstring into cross-references or inline code.

    ``documented``: the module paths whose members the API pages render (docs/api.md).
    """

    def __init__(self, documented: list | None = None) -> None:
        self.documented = tuple(documented or ())

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        seen: set[int] = set()

        def visit(obj) -> None:
            if id(obj) in seen:
                return
            seen.add(id(obj))
            if obj.docstring is not None:
                obj.docstring.value = link_roles(obj.docstring.value, obj, pkg, self.documented)
            for member in obj.members.values():
                if not member.is_alias:
                    visit(member)

        visit(pkg)
