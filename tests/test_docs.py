"""Every docstring example runs and prints what it says; every citation resolves in the repo."""
import doctest
import importlib
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

MODULES = [
    "roiops.crop_and_resize.api",
    "roiops.roi_align.api",
    "roiops.roi_align.conventions",
    "roiops.roi_align.plan",
    "roiops.roi_pool.api",
    "roiops.ps_roi_align.api",
    "roiops.ps_roi_pool.api",
    "roiops.ps_roi_pool.conventions",
    "roiops.compat.tensorflow",
    "roiops.compat.mindspore",
    "roiops.compat.torchvision",
    "roiops.roi_align_rotated.api",
    "roiops.roi_align_rotated.conventions",
    "roiops.compat.detectron2",
    "roiops.compat.mmcv",
    "roiops.multi_scale_roi_align.api",
    "roiops.multi_scale_roi_align.levels",
    "roiops.compat.torchvision_multiscale",
]
# Their examples need torch; without it they are skipped, not failed.
TORCH_MODULES = ["roiops.torch", "roiops.torch.ops", "roiops.torch.nn",
                 "roiops.torch.rotated_ops", "roiops.torch.ps_roi_ops",
                 "roiops.torch.multi_scale_ops"]


@pytest.mark.parametrize("name", MODULES + TORCH_MODULES)
def test_docstring_examples(name):
    if name in TORCH_MODULES:
        pytest.importorskip("torch")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


# --- citations -----------------------------------------------------------------------------

# The specification once lived outside the repository, in files a clone does not have; citing
# one of them, or one of their numbered sections, sends a reader nowhere. docs/ replaced them.
# (This file spells the patterns out, so it is not scanned for them.)
OUTSIDE_CITATION = re.compile(
    r"API\.md|DESIGN\.md|semantics[\w-]*\.md|semantics-(?:tensorflow|mindspore|torchvision)"
    r"|\.\./shared|shared/spec|\u00a7"
)
# A repo path under docs/, optionally with a section anchor: docs/decisions.md#flush-to-zero.
DOCS_CITATION = re.compile(r"(?<![\w/.-])(docs/[\w./-]+?\.(?:md|png|py))(?:#([\w-]+))?")
# A Markdown link or image target: [text](target).
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def repo_files():
    """Relative paths of the repository's files: tracked and untracked, not ignored, outside
    any virtual environment made in the checkout (``python3 -m venv v``, as the README's
    commands may be run: its packages are not the project's)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO, capture_output=True, check=True).stdout.decode()
        found = [name for name in listed.split("\0") if name and (REPO / name).is_file()]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk it
        found = []
        for root, dirs, files in os.walk(REPO):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d not in (
                "__pycache__", "build", "dist") and not d.endswith(".egg-info")]
            found += [str((Path(root) / f).relative_to(REPO)) for f in files]
    venvs = tuple(str(Path(name).parent) + "/" for name in found
                  if Path(name).name == "pyvenv.cfg")
    return sorted({name for name in found if not name.startswith(venvs)})


def text_files():
    """(relative path, text) of every file that is text (binary files hold no citations)."""
    for name in repo_files():
        data = (REPO / name).read_bytes()
        if b"\0" in data:
            continue
        try:
            yield name, data.decode("utf-8")
        except UnicodeDecodeError:
            continue


def github_anchor(heading):
    """The anchor GitHub gives a heading: code and link markup reduced to their text, lower
    case, punctuation other than ``-`` and ``_`` dropped, each space a ``-``."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path):
    """The heading anchors of a Markdown file, repeated headings numbered as GitHub does."""
    found, seen, fenced = set(), {}, False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            anchor = github_anchor(match.group(2))
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def broken_target(target, anchor):
    """Why a citation of ``target`` (a Path) with ``anchor`` (or None) does not resolve."""
    if not target.is_file():
        return "no such file"
    if anchor and target.suffix == ".md" and anchor not in anchors(target):
        return f"no heading with anchor #{anchor} in {target.relative_to(REPO)}"
    if anchor and target.suffix != ".md":
        return "an anchor into a file without headings"
    return None


def test_anchors_follow_github():
    assert github_anchor("`roiops crop`") == "roiops-crop"
    assert github_anchor("bilinear_v2 window overflow") == "bilinear_v2-window-overflow"
    assert github_anchor("Reusing memory with `out=`") == "reusing-memory-with-out"
    assert github_anchor("Images 2**24 pixels (or more)") == "images-224-pixels-or-more"


def test_nothing_cites_the_outside_specification():
    """Citations point into the repo: no file names the old specification or its sections."""
    offenders = {}
    for name, text in text_files():
        if name == "tests/test_docs.py":
            continue
        lines = [f"{number}: {line.strip()}" for number, line in
                 enumerate(text.splitlines(), 1) if OUTSIDE_CITATION.search(line)]
        if lines:
            offenders[name] = lines
    assert not offenders, ("cite docs/<page>.md#<section> instead:\n" + "\n".join(
        f"{name}:{line}" for name, lines in offenders.items() for line in lines))


def test_docs_citations_resolve():
    """Every ``docs/...`` path cited anywhere names a file, and its ``#anchor`` a heading."""
    broken = []
    for name, text in text_files():
        for number, line in enumerate(text.splitlines(), 1):
            for match in DOCS_CITATION.finditer(line):
                why = broken_target(REPO / match.group(1), match.group(2))
                if why:
                    broken.append(f"{name}:{number}: {match.group(0)}: {why}")
    assert not broken, "\n".join(broken)


def test_markdown_links_resolve():
    """Relative links in the Markdown files (docs/, README, ...) reach a file and heading."""
    broken = []
    for name, text in text_files():
        if not name.endswith(".md"):
            continue
        page = REPO / name
        for number, line in enumerate(text.splitlines(), 1):
            for match in MARKDOWN_LINK.finditer(line):
                link = match.group(1)
                if re.match(r"[a-z]+:", link):  # http:, https:, mailto:
                    continue
                path, _, anchor = link.partition("#")
                target = (page.parent / path).resolve() if path else page
                why = broken_target(target, anchor or None)
                if why:
                    broken.append(f"{name}:{number}: ({link}): {why}")
    assert not broken, "\n".join(broken)


def test_docs_index_lists_every_page():
    index = (REPO / "docs" / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([\w-]+\.md)\)", index))
    pages = {path.name for path in (REPO / "docs").glob("*.md")} - {"README.md"}
    assert pages <= linked, f"docs/README.md does not link {sorted(pages - linked)}"
