"""The ``harness`` command line."""

from __future__ import annotations

import json
import sys

import click

from . import __version__
from .errors import HarnessError


class HarnessGroup(click.Group):
    """Turns user errors into one line on stderr and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HarnessError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        except OSError as exc:
            # a folder the user named that cannot be written (read-only, full, not a folder): name
            # it in one line; an OSError without a file name is a bug and keeps its traceback
            if exc.filename is None:
                raise
            click.echo(f"Error: {exc.filename}: {exc.strerror or exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            # results are written batch by batch: nothing finished is lost
            click.echo("\nInterrupted. Finished batches are kept; run the same command again to resume.", err=True)
            sys.exit(130)


@click.group(cls=HarnessGroup)
@click.version_option(__version__, prog_name="harness")
def main() -> None:
    """Measure how well the attention of neural networks agrees with human gaze."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json: bool) -> None:
    """List loaded plugins: name, version, source and hooks; and what went wrong."""
    from .plugins import failures, get_registry, mark_reported, plugin_hooks, plugin_infos

    reg = get_registry(warn=False)
    rows = [
        {"name": i.name, "version": i.version, "source": i.source, "hooks": plugin_hooks(i.name)}
        for i in plugin_infos()
    ]
    failed = [{"name": f.name, "source": f.source, "error": f.error} for f in failures]
    hook_failures = [
        {"plugin": f.plugin, "hook": f.hook, "error": f.error, "dropped": list(f.names)} for f in reg.hook_failures
    ]
    conflicts = [{"kind": c.kind, "name": c.name, "plugins": list(c.plugins)} for c in reg.conflicts()]
    mark_reported(reg.problems())
    if as_json:
        click.echo(json.dumps(
            {"plugins": rows, "failed": failed, "hook_failures": hook_failures, "conflicts": conflicts}, indent=2
        ))
        return
    from tabulate import tabulate

    table = [[r["name"], r["version"], r["source"], ", ".join(r["hooks"])] for r in rows]
    click.echo(tabulate(table, headers=["plugin", "version", "source", "hooks"]))
    for f in failed:
        click.echo(f"failed to load plugin {f['name']!r} ({f['source']}): {f['error']}", err=True)
    for line in reg.problems():  # hooks that failed, names two plugins register
        click.echo(line, err=True)


def _listing(kind: str, columns: list[tuple[str, str]], as_json: bool) -> None:
    from tabulate import tabulate

    from .plugins import failures, get_registry, mark_reported

    reg = get_registry(warn=False)
    specs = reg.all(kind)  # contested names are left out, and said so below
    for f in failures:  # say why something the user installed is missing from the list
        click.echo(f"warning: plugin {f.name!r} ({f.source}) failed to load: {f.error}", err=True)
    for line in reg.problems():
        click.echo(f"warning: {line}", err=True)
    mark_reported(reg.problems())
    rows = []
    for s in specs:
        row = {"name": s.name, "plugin": s.plugin}
        for key, _ in columns:
            value = s.get(key)
            row[key] = list(value) if isinstance(value, (tuple, list)) else value
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    headers = ["name", "plugin"] + [h for _, h in columns]
    table = [
        [r["name"], r["plugin"]]
        + [", ".join(map(str, r[k])) if isinstance(r[k], list) else ("" if r[k] is None else r[k]) for k, _ in columns]
        for r in rows
    ]
    click.echo(tabulate(table, headers=headers))


@main.command()
@click.option("--json", "as_json", is_flag=True)
def models(as_json: bool) -> None:
    """List registered models (never imports torch)."""
    _listing("model", [("tasks", "tasks"), ("attention", "attention"), ("description", "description")], as_json)


@main.command()
@click.option("--json", "as_json", is_flag=True)
def metrics(as_json: bool) -> None:
    """List registered gaze-alignment metrics."""
    _listing("metric", [("higher_is_better", "higher is better"), ("description", "description")], as_json)


@main.command()
@click.option("--json", "as_json", is_flag=True)
def tasks(as_json: bool) -> None:
    """List registered tasks."""
    _listing("task", [("requires", "requires"), ("description", "description")], as_json)


@main.command("attention-methods")
@click.option("--json", "as_json", is_flag=True)
def attention_methods(as_json: bool) -> None:
    """List registered attention-extraction methods."""
    _listing("attention", [("description", "description")], as_json)


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def datasets(ctx: click.Context, as_json: bool) -> None:
    """List gaze datasets; `harness datasets info NAME` describes one."""
    if ctx.invoked_subcommand is None:
        _listing("dataset", [("tasks", "tasks"), ("description", "description")], as_json)


# Sub-command modules attach themselves to the groups above.
from .commands import load_all  # noqa: E402

load_all()

