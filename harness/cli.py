"""The ``harness`` command line."""

from __future__ import annotations

import json
import os
import sys
from typing import Callable

import click

from . import __version__
from .errors import HarnessError, interrupt_in


def _tolerant_streams() -> None:
    """On a terminal whose encoding cannot write the tables' arrows (a Latin-1 locale), write a
    '?' for what it cannot encode instead of stopping with UnicodeEncodeError after the work is done
    (eval, leaderboard show and their --help did; found by QA)."""
    import codecs

    for stream in (sys.stdout, sys.stderr):
        encoding = getattr(stream, "encoding", None) or "utf-8"
        try:
            utf = codecs.lookup(encoding).name.startswith("utf")
        except LookupError:
            utf = False
        if not utf and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="replace")
            except (ValueError, OSError):  # a stream that cannot be reconfigured is left as it is
                pass


_tolerant_streams()


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job scheduler's time limit), raised where the main thread is, so that
    it ends a command as Ctrl-C does: the scoring processes are stopped, nothing half-written is
    left. Without it Python dies on the spot and leaves its worker processes behind."""


def _terminate(signum, frame):
    raise Terminated()


def _kept(ctx: click.Context) -> str:
    # an evaluation writes batch by batch, a training epoch by epoch: nothing finished is lost
    unit = "epochs" if ctx.invoked_subcommand == "align" else "batches"
    return f"Finished {unit} are kept; run the same command again to resume."


def _rank() -> str:
    """' (rank R of N)' under torchrun / accelerate launch: every process prints its own error, and
    the line did not say which (found by QA)."""
    size, rank = os.environ.get("WORLD_SIZE", "1"), os.environ.get("RANK", "0")
    return f" (rank {rank} of {size})" if size.isdigit() and int(size) > 1 else ""


def _terminated(ctx: click.Context) -> str:
    if _rank():  # the launcher stops every process when one fails: the cause is that one's error
        return (f"\nTerminated{_rank()}, often by the launcher because another process of the job stopped (an "
                f"error above says why, unless it was killed). {_kept(ctx)}")
    return f"\nTerminated. {_kept(ctx)}"


class HarnessGroup(click.Group):
    """Turns user errors into one line on stderr and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context):
        import signal
        import threading

        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            return super().invoke(ctx)
        except Terminated:
            click.echo(_terminated(ctx), err=True)
            sys.exit(143)
        except HarnessError as exc:
            click.echo(f"Error{_rank()}: {exc}", err=True)
            sys.exit(1)
        except OSError as exc:
            # a folder the user named that cannot be written (read-only, full, not a folder): name
            # it in one line; a full disk or quota is never a bug, even where no file is named;
            # any other OSError without a file name is a bug and keeps its traceback
            import errno

            if exc.filename is None and exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            where = f"{exc.filename}: " if exc.filename is not None else ""
            click.echo(f"Error{_rank()}: {where}{exc.strerror or exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            # results are written batch by batch: nothing finished is lost
            click.echo(f"\nInterrupted. {_kept(ctx)}", err=True)
            sys.exit(130)
        except SystemError as exc:
            # an interrupt that arrives while a numba kernel calls back into Python (loading itself
            # from the cache) comes out wrapped: "returned a result with an exception set"
            cause = interrupt_in(exc)
            if cause is None:
                raise
            if isinstance(cause, Terminated):
                click.echo(_terminated(ctx), err=True)
                sys.exit(143)
            click.echo(f"\nInterrupted. {_kept(ctx)}", err=True)
            sys.exit(130)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


# --- shared options and helpers of the sub-commands -----------------------------------------------

#: width assumed for tables when stdout is not a terminal and $COLUMNS is not set
DEFAULT_WIDTH = 100


def output_width(default: int | None = DEFAULT_WIDTH) -> int | None:
    """Columns available for a table on stdout: ``$COLUMNS`` if set, else the terminal's width
    when stdout is a terminal, else ``default`` (None: do not fit)."""
    value = os.environ.get("COLUMNS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        tty = sys.stdout.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty:
        import shutil

        return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    return default


class LazyHelpOption(click.Option):
    """An option whose help text is computed only when ``--help`` is shown (``help_fn``), so that
    building the CLI stays cheap (the registry is not read for ``harness --help``)."""

    def __init__(self, *args, help_fn=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.help_fn = help_fn

    def get_help_record(self, ctx):
        if self.help_fn is not None:
            self.help = self.help_fn()
        return super().get_help_record(ctx)


def registered_names(kind: str) -> list[str]:
    """Names of one kind in the registry, or [] when the registry cannot be read."""
    try:
        from .plugins import get_registry

        return get_registry(warn=False).names(kind)
    except Exception:  # a help text must never fail
        return []


def task_help(prefix: str) -> Callable[[], str]:
    """Help of a ``--task`` option: ``prefix`` and the registered tasks (read when shown)."""

    def make() -> str:
        names = registered_names("task")
        listed = f"one of {', '.join(names)}" if names else "a registered task"
        return f"{prefix}: {listed} (`harness tasks` describes them)."

    return make


def json_option(what: str = "Machine-readable output (JSON) instead of the table."):
    return click.option("--json", "as_json", is_flag=True, help=what)


wide_option = click.option("--wide", is_flag=True,
                           help="Show every column in full, however wide (default: fit the terminal, "
                                "or 100 columns when stdout is not a terminal and $COLUMNS is not set).")


def fit_table(headers: list[str], table: list[list], width: int | None, *, flexible: set[str] = frozenset(),
              droppable: tuple[str, ...] = (), min_width: int = 24) -> tuple[str, list[str]]:
    """A ``tabulate`` table (``simple`` format) that fits ``width`` columns: the ``flexible``
    columns (long text) are wrapped, each to the same largest width that fits; when a
    ``droppable`` column would get fewer than ``min_width`` characters it is left out instead
    (first named first). Returns the table and the names of the columns left out. ``width`` None
    renders everything in full."""
    import textwrap

    from tabulate import tabulate

    def cell(v) -> str:
        return "" if v is None else str(v)

    text = tabulate(table, headers=headers)
    if width is None or _widest(text) <= width:
        return text, []
    headers, table = list(headers), [list(map(cell, r)) for r in table]
    dropped: list[str] = []
    while True:
        # tabulate pads a header by 2 (MIN_PADDING) when it is the widest cell of its column
        natural = [max([len(h) + 2] + [len(r[i]) for r in table]) for i, h in enumerate(headers)]
        flex = [i for i, h in enumerate(headers) if h in flexible]
        fixed = sum(n for i, n in enumerate(natural) if i not in flex) + 2 * (len(headers) - 1)
        room = width - fixed

        # a column is never narrower than its header, nor (when there is room) than its longest word
        words = {i: max([len(w) for r in table for w in r[i].split()] or [0]) for i in flex}
        floor = {i: len(headers[i]) + 2 for i in flex}
        if sum(max(floor[i], min(words[i], natural[i])) for i in flex) <= room:
            floor = {i: max(floor[i], min(words[i], natural[i])) for i in flex}

        def used(cap: int) -> int:
            return sum(max(min(natural[i], cap), floor[i]) for i in flex)

        cap = max((c for c in range(1, max(natural) + 1) if used(c) <= room), default=1)
        candidates = [h for h in droppable if h in headers and h not in dropped]
        if candidates and cap < min(min_width, natural[headers.index(candidates[0])]):
            i = headers.index(candidates[0])
            dropped.append(headers.pop(i))
            for r in table:
                r.pop(i)
            continue
        break
    while True:
        wrapped = [[textwrap.fill(v, max(cap, floor[i]), break_on_hyphens=False) if i in flex and v else v
                    for i, v in enumerate(r)] for r in table]
        text = tabulate(wrapped, headers=headers)
        over = _widest(text) - width
        if over <= 0 or cap <= 8 or not flex:
            return text, dropped
        cap -= max(1, over // max(len(flex), 1))  # a column came out wider than planned
        floor = {i: len(headers[i]) + 2 for i in flex}


def _widest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


@click.group(cls=HarnessGroup)
@click.version_option(__version__, prog_name="harness")
def main() -> None:
    """Measure how well the attention of neural networks agrees with human gaze."""


@main.command()
@json_option()
@wide_option
def plugins(as_json: bool, wide: bool) -> None:
    """List loaded plugins: name, version, source and hooks; and what went wrong."""
    from .plugins import failures, get_registry, mark_reported, plugin_hooks, plugin_infos

    reg = get_registry(warn=False)
    rows = [
        {"name": i.name, "version": i.version, "source": i.source, "hooks": plugin_hooks(i.name),
         "imports_when_loaded": list(i.heavy)}
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
    table = [[r["name"], r["version"], r["source"], ", ".join(r["hooks"])] for r in rows]
    text, _ = fit_table(["plugin", "version", "source", "hooks"], table, None if wide else output_width(),
                        flexible={"source", "hooks"})
    click.echo(text)
    for f in failed:
        click.echo(f"failed to load plugin {f['name']!r} ({f['source']}): {f['error']}", err=True)
    for line in reg.problems():  # hooks that failed, names two plugins register
        click.echo(line, err=True)
    for i in plugin_infos():
        if i.heavy:
            click.echo(f"warning: plugin {i.name!r} ({i.source}) imports {', '.join(i.heavy)} when it loads: every "
                       "harness command, listings included, then waits for it; import it inside the functions that "
                       "need it (docs/plugins.md)", err=True)


def catalogue_licences() -> dict[str, str]:
    """Plugin name -> the ``licence`` its entry in registry.yaml names (built-in plugins)."""
    try:
        from .plugins import builtin_catalogue

        return {e["name"]: e["licence"] for e in builtin_catalogue() if isinstance(e, dict) and e.get("licence")}
    except Exception:
        return {}


def dataset_licence(spec, catalogue: dict[str, str] | None = None) -> str | None:
    """A dataset's licence: what its plugin registered (``licence=``), else its registry.yaml entry."""
    value = spec.get("licence") or spec.get("license")
    if value:
        return str(value)
    return (catalogue if catalogue is not None else catalogue_licences()).get(spec.plugin)


def _listing(kind: str, columns: list[tuple[str, str]], as_json: bool, wide: bool = False,
             derived: dict[str, Callable] | None = None) -> None:
    from .plugins import failures, get_registry, mark_reported

    reg = get_registry(warn=False)
    specs = reg.all(kind)  # contested names are left out, and said so below
    for f in failures:  # say why something the user installed is missing from the list
        click.echo(f"warning: plugin {f.name!r} ({f.source}) failed to load: {f.error}", err=True)
    for line in reg.problems():
        click.echo(f"warning: {line}", err=True)
    mark_reported(reg.problems())
    if kind == "model":  # `harness eval --attention` accepts registered methods only (found by QA)
        known = set(reg.names("attention"))
        for s in specs:
            listed = s.get("attention", ()) or ()
            missing = [a for a in ([listed] if isinstance(listed, str) else listed) if a not in known]
            if missing:
                click.echo(f"warning: model {s.name!r} (plugin {s.plugin!r}) lists attention "
                           f"{', '.join(map(repr, missing))}, which no plugin registers: `harness eval --attention` "
                           "refuses it (register it with register_attention_methods)", err=True)
    rows = []
    for s in specs:
        row = {"name": s.name, "plugin": s.plugin}
        for key, _ in columns:
            value = derived[key](s) if derived and key in derived else s.get(key)
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
    width = None if wide else output_width()
    # long text wraps; the description goes first when there is too little room to read it
    text, dropped = fit_table(headers, table, width, flexible={"tasks", "attention", "requires", "needs", "licence",
                                                               "description"},
                              droppable=("description",))
    click.echo(text)
    if dropped:
        import textwrap

        click.echo(textwrap.fill(f"({', '.join(dropped)} left out to fit {width} columns; --wide or --json "
                                 f"shows {'it' if len(dropped) == 1 else 'them'})", width))


@main.command()
@json_option()
@wide_option
def models(as_json: bool, wide: bool) -> None:
    """List registered models (never imports torch)."""
    _listing("model", [("tasks", "tasks"), ("attention", "attention"), ("description", "description")], as_json,
             wide)


@main.command()
@json_option()
@wide_option
def metrics(as_json: bool, wide: bool) -> None:
    """List registered gaze-alignment metrics."""
    _listing("metric", [("higher_is_better", "higher is better"), ("description", "description")], as_json, wide)


@main.command()
@json_option()
@wide_option
def tasks(as_json: bool, wide: bool) -> None:
    """List registered tasks."""
    _listing("task", [("requires", "requires"), ("description", "description")], as_json, wide)


@main.command("attention-methods")
@json_option()
@wide_option
def attention_methods(as_json: bool, wide: bool) -> None:
    """List registered attention-extraction methods."""
    _listing("attention", [("description", "description")], as_json, wide)


@main.command("alignment-losses")
@json_option()
@wide_option
def alignment_losses(as_json: bool, wide: bool) -> None:
    """List registered alignment losses (for `harness align --loss`)."""
    _listing("alignment-loss", [("needs", "needs"), ("description", "description")], as_json, wide)


@main.group(invoke_without_command=True)
@json_option()
@wide_option
@click.pass_context
def datasets(ctx: click.Context, as_json: bool, wide: bool) -> None:
    """List gaze datasets and their licences; `harness datasets info NAME` describes one."""
    if ctx.invoked_subcommand not in (None, "info") and as_json:  # info takes it; prune has no such output
        raise click.UsageError(f"--json applies to the listing and to `datasets info`, not to "
                               f"`datasets {ctx.invoked_subcommand}`")
    if ctx.invoked_subcommand is None:
        catalogue = catalogue_licences()
        _listing("dataset", [("tasks", "tasks"), ("licence", "licence"), ("description", "description")], as_json,
                 wide, derived={"licence": lambda s: dataset_licence(s, catalogue)})


# Sub-command modules attach themselves to the groups above.
from .commands import load_all  # noqa: E402

load_all()

