"""Benchmark pages show commands anyone can run: no folder of the machine they ran on."""

import shlex

from metatune.benchmarks.common import (
    REPO_ROOT,
    how_it_was_run,
    placeholder_sentences,
    portable_command,
    repo_relative,
)

ROOT = "/repo"


def test_a_command_without_absolute_paths_comes_back_unchanged():
    cmd = (
        "python benchmarks/pipelines.py --benchmarks '' --merge docs/benchmarks/pipelines.json "
        "--out docs/benchmarks --note 'the paper'\"'\"'s regime; 2 cores' --seeds 5"
    )
    assert portable_command(cmd, "docs/benchmarks", root=ROOT) == cmd


def test_out_becomes_the_pages_folder_or_a_placeholder():
    cmd = "python benchmarks/pipelines.py --seeds 5 --out /work/runs/pb-lang300"
    assert portable_command(cmd, "docs/benchmarks/pipelines-language-300", root=ROOT) == (
        "python benchmarks/pipelines.py --seeds 5 --out docs/benchmarks/pipelines-language-300"
    )
    assert portable_command(cmd, None, root=ROOT).endswith("--out OUT")
    assert portable_command("python x.py --out=/tmp/cs", None, root=ROOT) == (
        "python x.py --out=OUT"
    )


def test_merged_files_become_earlier_placeholders_keeping_their_names():
    cmd = "python b.py --merge /work/runs/a/pipelines.json docs/x/pipelines.json /tmp/b/p.json"
    assert portable_command(cmd, root=ROOT) == (
        "python b.py --merge EARLIER/pipelines.json docs/x/pipelines.json EARLIER/p.json"
    )
    assert portable_command("python s.py --from-json /root/s.json", root=ROOT) == (
        "python s.py --from-json EARLIER/s.json"
    )


def test_notes_outside_the_repository_are_dropped_inside_made_relative():
    cmd = "python benchmarks/lhopt.py --seeds 5 --notes /work/notes/s15/main-notes.md --steps 9"
    assert portable_command(cmd, root=ROOT) == "python benchmarks/lhopt.py --seeds 5 --steps 9"
    inside = "python benchmarks/lhopt.py --notes /repo/docs/benchmarks/notes.md"
    assert portable_command(inside, root=ROOT) == (
        "python benchmarks/lhopt.py --notes docs/benchmarks/notes.md"
    )
    assert portable_command("python b.py --notes=/home/me/n.md --seeds 1", root=ROOT) == (
        "python b.py --seeds 1"
    )


def test_paths_inside_the_repository_become_relative_others_named_by_their_flag():
    cmd = (
        "python /repo/benchmarks/mlo.py /tmp/data.csv --out /repo/docs/benchmarks "
        "--grid-cache /tmp/grid.json --seeds -1"
    )
    assert portable_command(cmd, root=ROOT) == (
        "python benchmarks/mlo.py PATH --out docs/benchmarks --grid-cache GRID_CACHE --seeds -1"
    )
    # a script run from a copy elsewhere is still ours
    assert portable_command("python /tmp/co/benchmarks/lhopt.py", root=ROOT) == (
        "python benchmarks/lhopt.py"
    )


def test_quoting_survives_a_replacement():
    cmd = shlex.join(["python", "b.py", "--note", "it's /tmp/x in text", "--out", "/tmp/o"])
    back = shlex.split(portable_command(cmd, root=ROOT))
    assert back == ["python", "b.py", "--note", "it's /tmp/x in text", "--out", "OUT"]


def test_repo_relative():
    assert repo_relative(REPO_ROOT / "docs" / "benchmarks") == "docs/benchmarks"
    assert repo_relative(REPO_ROOT) == "."
    assert repo_relative("/definitely/elsewhere", root=ROOT) is None


def test_the_section_lists_commands_and_explains_each_placeholder_once():
    lines = how_it_was_run(
        [
            ("python b.py --out /work/runs/a", None, "2026-11-30, runs"),
            ("python b.py --merge /work/runs/a/p.json --out /work/runs/b", None, "later"),
            ("python b.py --notes /work/n.md --out /work/runs/c", "docs/benchmarks/c", ""),
        ],
        ["Machine: here"],
        ["Setup: 5 seeds."],
        root=ROOT,
    )
    text = "\n".join(lines)
    assert lines[0] == "## How it was run"
    assert "Setup: 5 seeds." in text
    assert "- Command (2026-11-30, runs): `python b.py --out OUT`" in text
    assert "- Command (later): `python b.py --merge EARLIER/p.json --out OUT`" in text
    assert "- Command: `python b.py --out docs/benchmarks/c`" in text
    assert "- Machine: here" in text
    assert text.count("Merged from earlier runs of the commands listed") == 1
    assert text.count("`--out OUT` stands for") == 1
    assert "notes are part of this page" in text
    assert "/work/" not in text
    assert placeholder_sentences(["python b.py --out docs/x"]) == []
