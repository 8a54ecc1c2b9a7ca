"""README.md runs as written: every fenced code block is executed, and its links resolve.

```python blocks run in order, each saved as a script and run in a fresh namespace, in one
temporary working directory (so their SQLite files and caches land there, and the CLI block can
inspect the studies they made).
```bash blocks: every `metatune ...` line runs as a subprocess in that directory and must exit 0;
`make <target>` lines are checked with `make -n` (CI runs `make test` itself, and the demo has
its own test in tests/test_cli.py). Any other kind of block or command fails the test, so a new
block cannot slip in untested.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "guide"
MAX_WORDS = 900

_FENCE = re.compile(r"^```([\w+-]*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int  # line of the opening fence in README.md

    @property
    def id(self) -> str:
        return f"{self.lang or 'plain'}@line{self.line}"


def extract_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, in order."""
    return [
        Block(m.group(1).lower(), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in _FENCE.finditer(text)
    ]


BLOCKS = extract_blocks(README.read_text(encoding="utf-8"))
PYTHON = [b for b in BLOCKS if b.lang == "python"]
BASH = [b for b in BLOCKS if b.lang in ("bash", "sh", "shell")]


def run_python_block(block: Block, folder: Path) -> str:
    """Run a block as a script saved in `folder`, in a fresh namespace, as a user who copies it
    into a file would (a pipeline stage's source must be readable for its cache key); its
    stdout is returned and kept out of the log."""
    script = folder / f"readme_block_line{block.line}.py"
    script.write_text(block.code, encoding="utf-8")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(script), run_name="__main__")
    return out.getvalue()


def metatune_command() -> list[str]:
    """The `metatune` console script of this interpreter's environment, else `python -m`."""
    script = Path(sys.executable).with_name("metatune")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "metatune.cli"]


def commands(block: Block) -> list[list[str]]:
    """The commands of a bash block, one per line, comments and blank lines dropped."""
    out = []
    for line in block.code.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out


@pytest.fixture(scope="module")
def readme_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, str | None]]:
    """A temporary working directory in which every python block has run, in README order;
    maps each block's line to None (it ran) or the traceback it raised."""
    workdir = tmp_path_factory.mktemp("readme")
    outcome: dict[int, str | None] = {}
    old = os.getcwd()
    os.chdir(workdir)
    try:
        for block in PYTHON:
            try:
                run_python_block(block, workdir)
            except BaseException:  # noqa: BLE001 (reported by the block's own test)
                outcome[block.line] = traceback.format_exc()
            else:
                outcome[block.line] = None
    finally:
        os.chdir(old)
    return workdir, outcome


def test_every_block_is_runnable() -> None:
    """Only python and bash blocks, so that the tests below run every one of them."""
    assert BLOCKS, "README.md has no code blocks"
    unknown = [b.id for b in BLOCKS if b not in PYTHON and b not in BASH]
    assert not unknown, f"blocks of a kind this test does not run: {unknown}"
    assert len(PYTHON) >= 4, "one example per part: HPO, pipeline, mlo, lhopt"


@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.id)
def test_python_block(block: Block, readme_dir: tuple[Path, dict[int, str | None]]) -> None:
    _, outcome = readme_dir
    error = outcome[block.line]
    assert error is None, f"README.md python block at line {block.line} failed:\n{error}"


@pytest.mark.parametrize("block", BASH, ids=lambda b: b.id)
def test_bash_block(block: Block, readme_dir: tuple[Path, dict[int, str | None]]) -> None:
    workdir, _ = readme_dir
    env = {k: v for k, v in os.environ.items() if k != "METATUNE_STORAGE"}
    env["COLUMNS"] = "200"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    lines = commands(block)
    assert lines, f"empty bash block at line {block.line}"
    for words in lines:
        shown = shlex.join(words)
        if words[0] == "make":
            assert shutil.which("make"), "make is not installed"
            assert len(words) == 2, f"{shown}: expected 'make <target>'"
            # a rule of the Makefile, not a file or folder that happens to exist (tests/)
            rule = re.compile(rf"^{re.escape(words[1])}\s*:(?!=)", re.M)
            assert rule.search(makefile), f"{shown}: no rule '{words[1]}:' in the Makefile"
            done = subprocess.run(
                ["make", "-n", words[1]], cwd=ROOT, capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, f"{shown} is not a Makefile target: {done.stderr}"
        elif words[0] == "metatune":
            done = subprocess.run(
                metatune_command() + words[1:],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, (
                f"README.md line '{shown}' exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        else:
            pytest.fail(f"README.md bash block at line {block.line}: no rule to test '{shown}'")


# The pages themselves --------------------------------------------------------------------------
def _pages() -> list[Path]:
    return [README, *sorted(GUIDE.rglob("*.md"))]


_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve_inside_the_repository(page: Path) -> None:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists() or ROOT not in path.parents:
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: links that do not resolve in the repo: {broken}"


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_machine_specific_paths(page: Path) -> None:
    found = re.findall(r"(?<![\w.])/(?:work|tmp|home|Users)/\S*", page.read_text(encoding="utf-8"))
    assert not found, f"{page.relative_to(ROOT)} names folders of one machine: {found}"


def test_readme_stays_short() -> None:
    words = len(README.read_text(encoding="utf-8").split())
    assert words < MAX_WORDS, f"README.md has {words} words; keep it under {MAX_WORDS}"
