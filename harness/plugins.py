"""Plugin discovery: built-ins from ``registry.yaml``, third parties from the ``harness`` entry points.

Both go through the same pluggy hooks. A third-party plugin that fails to import is recorded and
skipped; a hook that raises contributes nothing; a name two plugins register is usable by neither.
In every case the rest keep working (see :func:`get_registry`). Tests may ``pm.register(obj,
name=...)`` for one test and ``pm.unregister`` after it: the registry is rebuilt from ``pm`` on
every call.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy
import yaml

from . import hookspecs
from .errors import PluginError
from .registry import HookFailure, Registry, Spec, spec_problem

ENTRY_POINT_GROUP = "harness"
HOOK_KINDS = {
    "register_models": "model",
    "register_datasets": "dataset",
    "register_metrics": "metric",
    "register_attention_methods": "attention",
    "register_tasks": "task",
    "register_alignment_losses": "alignment-loss",
}

#: packages a plugin's hooks module must not import: every `harness` command loads every plugin, and
#: one torch import made `harness plugins` take 2.9 s instead of a fraction of one (found by QA)
HEAVY = ("torch", "transformers", "datasets")

pm = pluggy.PluginManager("harness")
pm.add_hookspecs(hookspecs)


@dataclass
class PluginInfo:
    name: str
    version: str
    source: str  # "built-in" or "distribution NAME"
    module: str
    metadata: dict[str, Any] = field(default_factory=dict)
    #: heavy packages (torch, transformers, datasets) first imported while its hooks module loaded
    heavy: tuple[str, ...] = ()


@dataclass
class LoadFailure:
    name: str
    source: str
    error: str


_info: dict[str, PluginInfo] = {}
failures: list[LoadFailure] = []
_loaded = False
_loading = False
_load_lock = threading.RLock()


def registry_yaml_path() -> Path:
    """The catalogue of built-in plugins: beside the ``plugins`` package in a checkout or an
    editable install, else where the wheel's data-files put it."""
    import plugins as builtin_pkg

    candidates = [
        Path(builtin_pkg.__file__).resolve().parent.parent / "registry.yaml",
        Path(sys.prefix) / "share" / "gaze-harness" / "registry.yaml",
    ]
    for path in candidates:
        if path.is_file():
            return path
    raise PluginError(f"registry.yaml not found (looked in {', '.join(map(str, candidates))})")


_CATALOGUE: dict[tuple, list] = {}


def builtin_catalogue() -> list[dict[str, Any]]:
    """The entries of ``registry.yaml``, parsed once per version of the file (the Hugging Face
    plugin reads its aliases from it each time the registry is built: 10 times in one eval)."""
    import copy

    path = registry_yaml_path()
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _CATALOGUE:
        data = yaml.safe_load(path.read_text()) or {}
        _CATALOGUE.clear()
        _CATALOGUE[key] = list(data.get("plugins", []))
    return copy.deepcopy(_CATALOGUE[key])


def _one_line(exc: BaseException) -> str:
    """``Type: message`` on one line (pluggy's validation errors span several)."""
    return f"{type(exc).__name__}: " + "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _register_plugin(obj: Any, name: str) -> None:
    """Register with pluggy, refusing hooks that no hookspec defines: a misspelt hook name would
    otherwise be accepted and silently never called."""
    import difflib

    pm.register(obj, name=name)
    unknown = sorted(c.name for c in pm.get_hookcallers(obj) or [] if c.spec is None)
    if unknown:
        pm.unregister(name=name)
        hints = []
        for hook in unknown:
            close = difflib.get_close_matches(hook, list(HOOK_KINDS), n=1)
            hints.append(f"{hook!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise PluginError(f"implements unknown hook {', '.join(hints)}; known hooks: {', '.join(HOOK_KINDS)}")
    # a hook function without the marker: pluggy skips it, and the plugin would load registering nothing
    hooked = {c.name for c in pm.get_hookcallers(obj) or []}
    unmarked = sorted(h for h in HOOK_KINDS if h not in hooked and callable(getattr(obj, h, None)))
    if unmarked:
        pm.unregister(name=name)
        raise PluginError(f"defines {', '.join(map(repr, unmarked))} without @hookimpl (from harness.hookspecs "
                          "import hookimpl), so it would never be called")


def _load_builtins() -> None:
    from . import __version__

    for i, entry in enumerate(builtin_catalogue()):
        if not isinstance(entry, dict) or not entry.get("name") or not entry.get("module"):
            raise PluginError(f"{registry_yaml_path()}: plugin entry {i} needs 'name' and 'module'")
        name = entry["name"]
        if pm.has_plugin(name) or any(f.name == name for f in failures):
            continue
        try:
            module = importlib.import_module(entry["module"])
            _register_plugin(module, name)
        except Exception as exc:  # reported by `harness plugins`; the other plugins keep working
            failures.append(LoadFailure(name, "built-in", _one_line(exc)))
            continue
        _info[name] = PluginInfo(name, __version__, "built-in", entry["module"], dict(entry))


def _load_entry_points() -> None:
    for ep in md.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "?"
        version = dist.version if dist is not None else "?"
        source = f"distribution {dist_name}"
        if any(f.name == ep.name and f.source == source for f in failures):
            continue
        if pm.has_plugin(ep.name):
            owner = _info.get(ep.name)
            if owner is not None and owner.source == source:
                continue  # the same distribution seen twice on sys.path
            taken_by = f"plugin from {owner.source}" if owner else "a plugin registered at run time"
            failures.append(
                LoadFailure(ep.name, source, f"PluginError: plugin name {ep.name!r} is already taken by {taken_by}")
            )
            continue
        before = {m for m in HEAVY if m in sys.modules}
        try:
            obj = ep.load()
            _register_plugin(obj, ep.name)
        except Exception as exc:  # report by name and go on: one bad plugin must not break the rest
            failures.append(LoadFailure(ep.name, source, _one_line(exc)))
            continue
        heavy = tuple(m for m in HEAVY if m in sys.modules and m not in before)
        _info[ep.name] = PluginInfo(ep.name, version, source, ep.value, heavy=heavy)


def load_plugins() -> None:
    """Load built-in and entry-point plugins once per process. Under a lock: a second thread (two
    harness.evaluate calls at once in a fresh notebook) waits for the first to finish loading instead
    of seeing an empty registry ("unknown dataset 'osie'"; found by QA)."""
    global _loaded, _loading
    if _loaded:
        return
    with _load_lock:  # reentrant: a plugin that asks for the registry while it loads gets what is loaded
        if _loaded or _loading:
            return
        _loading = True
        try:
            _load_builtins()
            _load_entry_points()
            _loaded = True
        finally:
            _loading = False


def reset_for_tests() -> None:
    """Forget entry-point plugins (and load failures, and which problems were already reported) so
    a test can make new distributions visible.

    Modules a test already imported stay in ``sys.modules``: give each test distribution its own
    package name.
    """
    global _loaded
    importlib.invalidate_caches()  # new files on sys.path since the last import
    for name, info in list(_info.items()):
        if info.source != "built-in":
            if pm.has_plugin(name):
                pm.unregister(name=name)
            del _info[name]
    failures.clear()
    _warned.clear()
    _loaded = False


def plugin_infos() -> list[PluginInfo]:
    load_plugins()
    out = []
    for name, plugin in pm.list_name_plugin():
        info = _info.get(name) or PluginInfo(
            name, "?", "registered at run time", getattr(plugin, "__name__", type(plugin).__name__)
        )
        out.append(info)
    return sorted(out, key=lambda i: (i.source != "built-in", i.name))


def plugin_hooks(name: str) -> list[str]:
    plugin = pm.get_plugin(name)
    return sorted(h.name for h in pm.get_hookcallers(plugin) or [])


def get_registry(*, warn: bool = True) -> Registry:
    """Call every hook of every plugin and collect the specs. Cheap: nothing heavy is imported.

    One plugin cannot break the others: a hook that raises (or registers something invalid)
    contributes nothing and is recorded in ``reg.hook_failures``; a name two plugins register is
    contested, usable by neither (see :class:`~harness.registry.Registry`). With ``warn``, each
    such problem is printed on stderr once per process (:func:`warn_once`), however often the
    registry is rebuilt; the listing commands pass ``warn=False`` and print them themselves.
    """
    load_plugins()
    reg = Registry()
    reg.failed = [(f.name, f.error) for f in failures]
    for hook_name, kind in HOOK_KINDS.items():
        caller = getattr(pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            if impl.hookwrapper or getattr(impl, "wrapper", False):
                continue  # wrappers register nothing themselves
            _call_hook(reg, hook_name, kind, impl)
    if warn:
        warn_once(reg.problems())
    return reg


def _call_hook(reg: Registry, hook_name: str, kind: str, impl: Any) -> None:
    """Call one plugin's hook; add what it registered only if the whole hook succeeded."""
    plugin = impl.plugin_name
    staged: list[Spec] = []
    tried: list[str] = []  # names, valid or not, so a lookup can say why one is missing
    invalid: list[str] = []

    def register(name: Any, factory: Any, **metadata: Any) -> None:
        spec = Spec(kind=kind, name=name, factory=factory, plugin=plugin, metadata=metadata)
        if isinstance(name, str) and name:
            tried.append(name)
        problem = spec_problem(spec)
        if problem is None and any(s.name == name for s in staged):
            problem = f"registered {kind} {name!r} twice"
        if problem is not None:
            invalid.append(problem)  # recorded even if the hook catches what we raise
            raise PluginError(problem)
        staged.append(spec)

    # pluggy lets an implementation take a subset of the spec's arguments
    kwargs = {"register": register} if "register" in impl.argnames else {}
    error = None
    try:
        impl.function(**kwargs)
    except Exception as exc:  # one plugin's bug must not break the commands that do not use it
        error = _one_line(exc)
    # the same plugin may implement one hook twice (pluggy's ``specname``): a name in both is a bug
    invalid += [f"registered {kind} {s.name!r} twice" for s in staged if plugin in reg.plugins_of(kind, s.name)]
    if invalid:
        error = _one_line(PluginError(invalid[0]))
    if error is not None:
        reg.hook_failures.append(HookFailure(plugin, hook_name, kind, error, tuple(dict.fromkeys(tried))))
        return
    for spec in staged:
        reg.add(spec)


_warned: set[str] = set()


def warn_once(problems: list[str]) -> None:
    """Print each plugin problem on stderr as ``warning: ...``, once per process."""
    for line in problems:
        if line not in _warned:
            _warned.add(line)
            print(f"warning: {line}", file=sys.stderr)


def mark_reported(problems: list[str]) -> None:
    """The caller reported these itself: :func:`warn_once` stays quiet about them."""
    _warned.update(problems)
