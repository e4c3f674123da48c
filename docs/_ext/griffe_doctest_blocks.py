"""Griffe extension for the API pages: render bare doctest blocks as Python console code.

alice_ref's docstrings are prose with formulas and ``>>>`` examples (run by doctest), without
Google/NumPy "Examples:" sections. Markdown would read a bare ``>>>`` line as a nested block
quote and ``[...]`` output lines as reference links; this extension fences each doctest block
(from a ``>>>`` line to the next blank line) as ```` ```pycon ```` before mkdocstrings renders
it. It changes only the text griffe hands to mkdocstrings, never the source files.
Loaded by mkdocs.yml (plugins > mkdocstrings > handlers > python > options > extensions).
"""

from __future__ import annotations

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
