"""Every citation of the documentation points at a page and a heading that exist.

The repository is its own specification (docs/spec/: math.md, algorithm.md, api.md,
design.md). Code, tests and docs cite it in one form, a path and a heading anchor inside the
repository, optionally followed by a step of a numbered list::

    docs/spec/algorithm.md#one-batch, step 5

and, in the docs, the same text as a link (``[`docs/spec/algorithm.md#one-batch`](...)``).
The official algorithm's steps are cited as its code's comments do: "Alg. 2, step 5",
"Alg. 3, steps 1-3" (docs/spec/algorithm.md#the-official-algorithms-own-step-numbers).

This module scans every .py, .md, .yml, .yaml, .toml and .sh file of the repository (the files
git tracks plus new ones it does not ignore; a walk of the tree without git) and fails, naming
file and line, on:

- a cited ``docs/....md`` that does not exist, or an ``#anchor`` that is no heading of it
  (anchors computed as Python-Markdown's toc does: lower case, punctuation dropped, spaces and
  runs of '-' to one '-', '_1', '_2' ... for repeated headings; ``{#id}`` attribute lists and
  the ids of mkdocstrings' ``::: module`` blocks count too);
- ", step N" after a citation where the cited section has no numbered item N;
- "Alg. N, step K" for an algorithm or a step the spec does not number;
- a relative Markdown link (``[text](page.md#anchor)``) whose page or anchor does not exist, or
  whose ``docs/...`` link text names a different target than the link;
- an old-style citation: the former out-of-repository spec files, cited by their bare
  upper-case names (the four names below with ``.md``) or by a path through the shared folder;
- a nav entry of mkdocs.yml naming a page that does not exist.

The checker itself is tested on fabricated bad citations (built at run time, so that this file
holds none of them) and its anchors against Python-Markdown's own toc.
"""

from __future__ import annotations

import functools
import re
import subprocess
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SUFFIXES = {".py", ".md", ".yml", ".yaml", ".toml", ".sh"}
SKIP_DIRS = {".git", "site", "build", "dist", "node_modules", ".venv", "venv", "__pycache__",
             ".pytest_cache", ".hypothesis"}

# A citation: docs/<path>.md with an optional #anchor (not part of a longer path).
CITE = re.compile(r"(?<![\w./-])docs/((?:[\w.-]+/)*[\w-]+\.md)(?:#([\w.-]*))?")
# ", step 5" / " steps 1-6" / ", steps 3 to 5" right after a citation.
STEP_AFTER = re.compile(r"\s*,?\s*[Ss]teps?\s+(\d+)(?:\s*(?:-|–|to|and)\s*(\d+))?")
# The official algorithm's numbering: "Alg. 2, step 5", "Alg. 3, steps 1-3", "Alg. 2".
ALG = re.compile(r"\bAlg\.\s*(\d+)(?:\s*,?\s*[Ss]teps?\s+(\d+)(?:\s*(?:-|–)\s*(\d+))?)?")
# The former spec files' names (upper case, so docs/api.md is not one) and the shared folder.
_OLD_STEMS = ("ALICE", "MATH", "DESIGN", "API")
OLD_NAME = re.compile(r"(?<![\w-])(?:" + "|".join(_OLD_STEMS) + r")\.md\b")
OLD_PATH = re.compile(r"\.\./shared\b|(?<![\w.-])shared[/\\](?:spec|conformance)\b")
# Markdown links to pages ([t](x.md#a)) and to anchors of the same page ([t](#a)).
MD_LINK = re.compile(r"\]\((?!https?:|mailto:)([^)\s#]*\.md)?(?:#([^)\s]*))?\)")
# A link whose text is a docs/ citation: [`docs/<page>.md#<anchor>`](<target>)
CODE_LINK = re.compile(r"\[`(docs/[^`]+)`\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
HEADING = re.compile(r"^(#{1,6})(?!#)(.*?)$")
ATTR_ID = re.compile(r"\s*\{:?[^}]*?#([\w-]+)[^}]*\}\s*$")
DIRECTIVE = re.compile(r"^:::\s*([\w.]+)")
NAV_PAGE = re.compile(r"^\s*-\s*(?:[^:\n]+:\s*)?([\w./-]+\.md)\s*$")


# -- anchors ------------------------------------------------------------------------------------

def slugify(text: str, sep: str = "-") -> str:
    """Python-Markdown toc's default slugify (markdown.extensions.toc.slugify)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(rf"[{sep}\s]+", sep, text)


def heading_text(raw: str) -> str:
    """The plain text of an ATX heading's Markdown (what the toc slugifies)."""
    text = re.sub(r"\s#+\s*$", "", " " + raw.strip()).strip()  # closing hashes
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)    # links, images: their text
    text = re.sub(r"<[^>]+>", "", text)                          # inline HTML tags
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"(?<!\w)_+|_+(?!\w)", "", text)               # _emphasis_, not alice_ref
    return text.strip()


@functools.lru_cache(maxsize=None)
def page_info(path: Path):
    """:func:`parse_page` of the file ``path``."""
    return parse_page(path.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=None)
def parse_page(text: str):
    """(anchors, prefixes, sections) of a Markdown page.

    anchors: the heading ids; prefixes: the objects of mkdocstrings' ``:::`` blocks (their
    members' ids start with them); sections: {anchor: the section's lines, up to the next
    heading of its level or above}.
    """
    lines = text.splitlines()
    anchors: list[str] = []
    prefixes: list[str] = []
    starts: list[tuple[int, int, str]] = []  # (line index, level, anchor)
    fence = None
    for i, line in enumerate(lines):
        m = FENCE.match(line)
        if m:
            mark = m.group(1)
            if fence is None:
                fence = mark
            elif mark[0] == fence[0] and len(mark) >= len(fence) and not line.strip()[len(mark):]:
                fence = None
            continue
        if fence is not None:
            continue
        d = DIRECTIVE.match(line)
        if d:
            prefixes.append(d.group(1))
            continue
        h = HEADING.match(line)
        if not h:
            continue
        raw = h.group(2)
        explicit = ATTR_ID.search(raw)
        if explicit:
            ident = explicit.group(1)
        else:
            base = slugify(heading_text(re.sub(r"\s*\{:?[^}]*\}\s*$", "", raw)))
            ident, k = base, 0
            while ident in anchors:  # toc.unique: repeated headings get _1, _2, ...
                k += 1
                ident = f"{base}_{k}"
        anchors.append(ident)
        starts.append((i, len(h.group(1)), ident))
    sections = {}
    for j, (i, level, ident) in enumerate(starts):
        end = next((s for s, lev, _ in starts[j + 1:] if lev <= level), len(lines))
        sections[ident] = lines[i + 1:end]
    return frozenset(anchors), tuple(prefixes), sections


def anchor_exists(path: Path, anchor: str) -> bool:
    anchors, prefixes, _ = page_info(path)
    return anchor in anchors or any(anchor == p or anchor.startswith(p + ".") for p in prefixes)


def numbered_items(path: Path, anchor: str) -> set[int]:
    """The numbers of the top-level ordered-list items of a section ("1. ...")."""
    _, _, sections = page_info(path)
    return {int(m.group(1)) for line in sections.get(anchor, [])
            if (m := re.match(r"^ {0,3}(\d+)\.\s", line))}


@functools.lru_cache(maxsize=None)
def official_steps() -> dict[int, int]:
    """{algorithm number: last step} from the spec's "Alg. N (...)" sections."""
    spec = DOCS / "spec" / "algorithm.md"
    out: dict[int, int] = {}
    if not spec.is_file():
        return out
    _, _, sections = page_info(spec)
    for ident, body in sections.items():
        m = re.fullmatch(r"alg-(\d+)-[\w-]+", ident)
        if m:
            nums = [int(n) for line in body
                    for n in re.findall(r"\d+", (re.match(r"^- ([\d–-]+):", line) or ["", ""])[1])]
            out[int(m.group(1))] = max(nums, default=0)
    return out


# -- the checker ----------------------------------------------------------------------------------

def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _check_target(target: Path, anchor: str | None, what: str,
                  own: tuple[Path, str] | None = None) -> str | None:
    """None if ``target`` (with ``anchor``) exists; ``own``: (path, text) of the page checked."""
    if own is not None and target == own[0]:
        anchors, prefixes, _ = parse_page(own[1])
        if anchor and anchor not in anchors and not any(
                anchor == p or anchor.startswith(p + ".") for p in prefixes):
            return f"{what}: this page has no heading with anchor #{anchor}"
        return None
    if not target.is_file():
        return f"{what}: no such file {_rel(target)}"
    if anchor and not anchor_exists(target, anchor):
        return f"{what}: {_rel(target)} has no heading with anchor #{anchor}"
    return None


def _check_steps(target: Path, anchor: str | None, rest: str, what: str) -> list[str]:
    m = STEP_AFTER.match(rest)
    if not m:
        return []
    if not anchor:  # a step needs its section: docs/spec/algorithm.md#one-batch, step 5
        return [f"{what}: a step cited without its section: write docs/<page>.md#<heading>, "
                "step N"]
    if not m.group(0).lstrip().startswith(","):
        return [f"{what}: write the step as '#{anchor}, step N' (comma), the one citation form"]
    if target.suffix != ".md" or not target.is_file():
        return []
    items = numbered_items(target, anchor)
    wanted = [int(n) for n in m.groups() if n]
    missing = [n for n in wanted if n not in items]
    if missing:
        have = f"{min(items)}-{max(items)}" if items else "none"
        return [f"{what}: section #{anchor} has no numbered step {missing[0]} (steps: {have})"]
    return []


def check_text(text: str, source: Path) -> list[str]:
    """Problems with the citations in ``text``, read as the content of file ``source``."""
    problems = []
    name = _rel(source)
    is_md = source.suffix == ".md"
    is_mkdocs = source.name in ("mkdocs.yml", "mkdocs.yaml")
    steps = official_steps()
    fence = False
    for lineno, line in enumerate(text.splitlines(), 1):
        where = f"{name}:{lineno}"
        if is_md and FENCE.match(line):
            fence = not fence
        for m in CITE.finditer(line):
            page, anchor = m.group(1), (m.group(2) or "").rstrip(".-") or None
            what = f"{where}: citation docs/{page}" + (f"#{anchor}" if anchor else "")
            target = DOCS / page
            err = _check_target(target, anchor, what)
            if err:
                problems.append(err)
            else:  # the step may follow the link that carries the citation: [`...`](...), step 5
                rest = re.sub(r"^`\]\([^)]*\)", "", line[m.end():])
                problems += _check_steps(target, anchor, rest, what)
        for m in OLD_NAME.finditer(line):
            problems.append(f"{where}: old-style citation {m.group(0)!r} "
                            "(cite docs/spec/<page>.md#<heading> instead)")
        for m in OLD_PATH.finditer(line):
            problems.append(f"{where}: old-style path {m.group(0)!r} "
                            "(the specification is docs/spec/ in this repository)")
        for m in ALG.finditer(line):
            alg, first, last = int(m.group(1)), m.group(2), m.group(3)
            if steps and alg not in steps:
                problems.append(f"{where}: {m.group(0)!r}: the spec numbers only Alg. "
                                + ", ".join(map(str, sorted(steps))))
                continue
            for n in (first, last):
                if n and steps and not 1 <= int(n) <= steps[alg]:
                    problems.append(f"{where}: {m.group(0)!r}: Alg. {alg} has steps "
                                    f"1-{steps[alg]}")
        if is_md and not fence:
            for m in MD_LINK.finditer(line):
                page, anchor = m.group(1), m.group(2) or None
                target = (source.parent / page).resolve() if page else source
                if page and not target.is_relative_to(ROOT):
                    continue
                err = _check_target(target, anchor, f"{where}: link ({page or ''}"
                                    + (f"#{anchor}" if anchor else "") + ")", own=(source, text))
                if err:
                    problems.append(err)
            for m in CODE_LINK.finditer(line):
                shown, link = m.group(1), m.group(2)
                if link.startswith(("http:", "https:")):
                    continue
                page, _, anchor = link.partition("#")
                target = (source.parent / page).resolve() if page else source
                named = shown.partition("#")
                if (target != (ROOT / named[0]).resolve() or anchor != named[2]):
                    problems.append(f"{where}: link text {shown} but target {link}")
        if is_mkdocs:
            m = NAV_PAGE.match(line)
            if m and not (DOCS / m.group(1)).is_file():
                problems.append(f"{where}: nav page {m.group(1)} not in docs/")
    return problems


def scanned_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], cwd=ROOT, capture_output=True, check=True,
                             timeout=60).stdout.decode("utf-8")
        paths = [ROOT / p for p in out.split("\0") if p]
    except (OSError, subprocess.SubprocessError):
        paths = [p for p in ROOT.rglob("*")
                 if not SKIP_DIRS.intersection(p.relative_to(ROOT).parts)
                 and not any(part.endswith(".egg-info") for part in p.parts)]
    return sorted(p for p in set(paths) if p.suffix in SUFFIXES and p.is_file())


# -- the repository -------------------------------------------------------------------------------

def test_specification_pages_exist():
    for page in ("math", "algorithm", "api", "design"):
        assert (DOCS / "spec" / f"{page}.md").is_file(), f"docs/spec/{page}.md"
    assert official_steps() == {2: 11, 3: 10}, official_steps()
    assert numbered_items(DOCS / "spec" / "algorithm.md", "one-batch") == set(range(1, 7))


def test_every_citation_resolves():
    files = scanned_files()
    assert len(files) > 20 and ROOT / "mkdocs.yml" in files, "scan found too few files"
    problems = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        problems += check_text(text, path)
    assert not problems, f"{len(problems)} bad citation(s):\n" + "\n".join(problems)


# -- the checker, on fabricated citations ----------------------------------------------------------

SPEC = "docs/" + "spec/"          # split so that this file cites nothing it does not mean
OLD = _OLD_STEMS[0] + "." + "md"  # the former algorithm spec's bare name
ALG_ = "Alg" + "."
FAKE_PY = ROOT / "alice_ref" / "fabricated.py"
FAKE_MD = DOCS / "results" / "fabricated.md"

GOOD = [
    f"(see {SPEC}algorithm.md#one-batch, step 5; Alg. 3, steps 1-3)",
    f"{SPEC}math.md#r5-optimal-hessianglass-quasi-newton-step.",
    f"{SPEC}algorithm.md#hyperparameters and Alg. 2, step 11",
    "docs/api.md#alice_ref.maths.step.optimal_step",
]
BAD = [
    (f"see {SPEC}algorithm.md#no-such-heading", "no heading with anchor #no-such-heading"),
    (f"see {SPEC}nonexistent.md", f"no such file {SPEC}nonexistent.md"),
    (f"see {SPEC}algorithm.md#one-batch, step 9", "no numbered step 9"),
    (f"see {SPEC}algorithm.md steps 3-4", "a step cited without its section"),
    (f"see {SPEC}algorithm.md#one-batch steps 3-4", "(comma)"),
    (f"({OLD} step 5)", "old-style citation"),
    (f"(MATH.{'md'} R3)", "old-style citation"),
    ("../spec/" + OLD, "old-style citation"),
    ("../" + "shared/" + "spec/x", "old-style path"),
    ("shared/" + "spec/" + OLD, "old-style path"),
    (ALG_ + " 3, step 12", "Alg. 3 has steps 1-10"),
    (ALG_ + " 7, step 1", "the spec numbers only Alg. 2, 3"),
]


def test_slugify_matches_the_toc():
    cases = {
        "The official algorithm's own step numbers": "the-official-algorithms-own-step-numbers",
        "R5 Optimal Hessian–glass quasi-Newton step": "r5-optimal-hessianglass-quasi-newton-step",
        "Results R1–R8: statements, derivations, code and checks":
            "results-r1r8-statements-derivations-code-and-checks",
        "Functional API (`alice_ref.core`)": "functional-api-alice_refcore",
        "Alg. 2 (sample step)": "alg-2-sample-step",
    }
    for text, slug in cases.items():
        assert slugify(heading_text(text)) == slug, text
    toc = pytest.importorskip("markdown.extensions.toc")
    for text, slug in cases.items():
        assert toc.slugify(heading_text(text), "-") == slug


def test_anchors_agree_with_python_markdown():
    """Our heading ids equal the ids Python-Markdown's toc gives every docs page."""
    markdown = pytest.importorskip("markdown")
    pytest.importorskip("pymdownx")
    exts = ["toc", "attr_list", "tables", "admonition", "def_list", "footnotes",
            "pymdownx.superfences"]

    def ids(tokens):
        for t in tokens:
            yield t["id"]
            yield from ids(t["children"])

    for page in sorted(DOCS.rglob("*.md")):
        md = markdown.Markdown(extensions=exts)
        md.convert(page.read_text(encoding="utf-8"))
        anchors, _, _ = page_info(page)
        assert set(ids(md.toc_tokens)) == set(anchors), _rel(page)


@pytest.mark.parametrize("line", GOOD)
@pytest.mark.parametrize("source", [FAKE_PY, FAKE_MD], ids=["py", "md"])
def test_checker_accepts_good_citations(line, source):
    assert check_text(line, source) == []


@pytest.mark.parametrize("line,message", BAD)
def test_checker_rejects_bad_citations(line, message):
    problems = check_text(f"first line\n{line}\n", FAKE_PY)
    assert problems, f"not caught: {line!r}"
    assert all(p.startswith("alice_ref/fabricated.py:2: ") for p in problems), problems
    assert any(message in p for p in problems), problems


def test_checker_on_markdown_links():
    text = "\n".join([
        "# A page",
        "[ok](../spec/algorithm.md#one-batch) and [ok](#a-page)",
        "[bad](../spec/algorithm.md#nope)",
        "[bad](missing.md)",
        "[bad](#not-here)",
        f"[`{SPEC}algorithm.md#one-batch`](../spec/math.md#notation)",
        f"[`{SPEC}algorithm.md#one-batch`](../spec/algorithm.md#one-batch), step 3",
        f"[`{SPEC}algorithm.md#one-batch`](../spec/algorithm.md#one-batch), step 7",
        "```",
        "[in a fence](nowhere.md)",
        "```",
    ])
    problems = check_text(text, FAKE_MD)  # same-page anchors come from the text itself
    lines = sorted({int(p.split(":")[1]) for p in problems})
    assert lines == [3, 4, 5, 6, 8], problems
    assert any("link text" in p for p in problems), problems
    assert any("no numbered step 7" in p for p in problems), problems
