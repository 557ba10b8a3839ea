"""``--help`` of every command: every option says what it does; ``--task`` lists the registered
tasks, read only when that help is shown (``harness --help`` never builds the registry)."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from harness.cli import main


def commands(group: click.Group, path: tuple[str, ...] = ()):
    """(argv prefix, command) of every command and group under ``group``, itself included."""
    yield path, group
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from commands(cmd, path + (name,))
        else:
            yield path + (name,), cmd


ALL = list(commands(main))


def help_entries(text: str) -> dict[str, str]:
    """First option name -> its help text (the ``[default: ...]``/``[required]`` extras removed),
    parsed from the ``Options:`` section of a ``--help`` page."""
    lines = text.split("Options:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    entries: list[list[str]] = []
    for line in lines:
        if re.match(r"^  -", line):
            entries.append([line])
        elif line.startswith("   ") and entries:
            entries[-1].append(line)
    out = {}
    for first, *rest in entries:
        opts, _, help_first = first.strip().partition("  ")
        text = " ".join([help_first.strip()] + [ln.strip() for ln in rest]).strip()
        while re.search(r"\s*\[[^\[\]]*\]$", text):  # click's extras: [default: x], [required], [x>=1]
            text = re.sub(r"\s*\[[^\[\]]*\]$", "", text)
        name = opts.split(",")[-1].split()[0] if "--" in opts else opts.split()[0]
        out[re.sub(r"/.*", "", name)] = text
    return out


@pytest.mark.parametrize("path,cmd", ALL, ids=[" ".join(p) or "harness" for p, _ in ALL])
def test_every_option_has_a_help_text(path, cmd):
    result = CliRunner().invoke(main, [*path, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    entries = help_entries(result.output)
    # every option of the command was found on the page
    # (click lists an option's names in declaration order; the page's entry ends with the last long one)
    expected = {([o for o in p.opts if o.startswith("--")] or p.opts)[-1]
                for p in cmd.get_params(click.Context(cmd)) if isinstance(p, click.Option)}
    assert set(entries) == expected
    missing = sorted(name for name, text in entries.items() if not text)
    assert not missing, f"{' '.join(('harness',) + path)}: no help for {', '.join(missing)}"


def test_task_options_list_the_registered_tasks():
    from harness.plugins import get_registry

    tasks = get_registry().names("task")
    assert {"free-viewing", "classification", "detection", "captioning"} <= set(tasks)
    for path in (("eval",), ("leaderboard", "show")):
        text = " ".join(CliRunner().invoke(main, [*path, "--help"], terminal_width=200).output.split())
        assert f"one of {', '.join(tasks)}" in text, path


def test_top_level_help_does_not_read_the_registry(monkeypatch):
    import harness.plugins

    def boom(*args, **kwargs):
        raise AssertionError("harness --help must not build the registry")

    monkeypatch.setattr(harness.plugins, "get_registry", boom)
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    assert "leaderboard" in result.output


@pytest.mark.parametrize("path", [p for p, cmd in ALL if any("--results" in o.opts for o in cmd.params)])
def test_a_repeated_results_folder_is_refused_not_dropped(path, tmp_path):
    """Click keeps the last of a repeated option: ``--results A --results B`` used to read B alone,
    without a word, as if A's runs did not exist."""
    a, b = tmp_path / "a", tmp_path / "b"
    r = CliRunner().invoke(main, [*path, "--results", str(a), "--results", str(b)])
    assert r.exit_code == 1
    assert r.output.strip() == (f"Error: --results was given 2 times ({a}, {b}): give one folder; it is searched "
                                "recursively, so a folder holding both works")
