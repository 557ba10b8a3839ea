"""Lazy specs: what plugins register, resolved to real objects only when used.

A spec holds a ``"module:attr"`` factory string and metadata. Listing specs imports nothing heavy;
:meth:`Spec.load` imports the module on demand.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import HarnessError, PluginError

KINDS = ("model", "dataset", "metric", "attention", "task", "alignment-loss")
PLURAL = {"model": "models", "dataset": "datasets", "metric": "metrics", "attention": "attention methods",
          "task": "tasks", "alignment-loss": "alignment losses"}


@dataclass(frozen=True)
class Spec:
    kind: str
    name: str
    factory: str | Callable[..., Any]
    plugin: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.metadata[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    @property
    def factory_path(self) -> str:
        f = self.factory
        if isinstance(f, str):
            return f
        return f"{f.__module__}:{getattr(f, '__qualname__', getattr(f, '__name__', repr(f)))}"

    def resolve(self) -> Any:
        """Import and return the factory named by the spec."""
        if not isinstance(self.factory, str):
            return self.factory
        module_name, _, attr = self.factory.partition(":")
        try:
            obj = importlib.import_module(module_name)
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
        except Exception as exc:  # a broken plugin must be named, not crash with a traceback
            raise PluginError(
                f"{self.kind} {self.name!r} from plugin {self.plugin!r}: cannot import "
                f"{self.factory!r}: {type(exc).__name__}: {exc}"
            ) from exc
        return obj

    def load(self, **kwargs: Any) -> Any:
        """Resolve the factory and call it (for functions registered as-is, use :meth:`resolve`). A
        factory that fails is named in one line (its own one-line errors pass through as they are)."""
        factory = self.resolve()
        try:
            return factory(**kwargs)
        except (HarnessError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise PluginError(f"{self.kind} {self.name!r} from plugin {self.plugin!r} failed to load: "
                              f"{type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class Conflict:
    """One name of one kind registered by more than one plugin: usable by none of them."""

    kind: str
    name: str
    plugins: tuple[str, ...]  # sorted

    def message(self) -> str:
        names = [repr(p) for p in self.plugins]
        who = ", ".join(names[:-1]) + f" and {names[-1]}"
        if len(names) == 2:
            return f"{self.kind} {self.name!r} is registered by two plugins, {who}: uninstall or rename one"
        return (f"{self.kind} {self.name!r} is registered by {len(names)} plugins, {who}: "
                "uninstall or rename all but one")


@dataclass(frozen=True)
class HookFailure:
    """A plugin's ``register_*`` hook raised, or registered something invalid: everything that hook
    registered is dropped (``names``: what it had registered or tried to, so a lookup can say why)."""

    plugin: str
    hook: str
    kind: str
    error: str  # one line
    names: tuple[str, ...] = ()

    def message(self) -> str:
        return f"plugin {self.plugin!r} failed in {self.hook}: {self.error}"


#: names a metric cannot take: the per-image rows' own columns (``harness.results.summary.ROW_COLUMNS``)
#: and the log-likelihood a calibrated run adds, and the leaderboard's explained information gain
RESERVED_METRIC_NAMES = ("stimulus_id", "status", "error", "n_fixations", "seconds", "output", "ll", "ig_explained")


def spec_problem(spec: Spec) -> str | None:
    """Why ``spec`` cannot be registered, as one line to follow "plugin 'NAME' ", or None."""
    if spec.kind not in KINDS:
        return f"registered unknown kind {spec.kind!r}"
    if not isinstance(spec.name, str) or not spec.name:
        return f"registered a {spec.kind} without a name"
    if not isinstance(spec.factory, str) and not callable(spec.factory):
        return f"registered {spec.kind} {spec.name!r} with a factory that is neither 'module:attr' nor callable"
    if spec.kind == "metric" and (spec.name in RESERVED_METRIC_NAMES or spec.name.startswith("task:")):
        return (f"registered metric {spec.name!r}, a name the result rows use for a column of their own "
                f"({', '.join(RESERVED_METRIC_NAMES)}, task:*): its values would overwrite it")
    if isinstance(spec.factory, str) and not all(spec.factory.partition(":")[::2]):
        return f"registered {spec.kind} {spec.name!r} with factory {spec.factory!r}, which is not 'module:attr'"
    return None


class Registry:
    """Everything the loaded plugins registered, by kind and name.

    A name of one kind registered by two (or more) plugins is *contested*: it is usable by none of
    them. :meth:`get` raises a one-line :class:`PluginError` naming every plugin involved, and
    :meth:`names`, :meth:`in_order`, :meth:`all` and ``in`` leave it out, so a caller iterating
    (say) every metric never gets one of the two at random; :meth:`conflicts` reports them.
    Hooks that failed (:attr:`hook_failures`) contributed nothing; a lookup of a name they had
    registered says so.
    """

    def __init__(self) -> None:
        self._specs: dict[str, dict[str, Spec]] = {k: {} for k in KINDS}
        self._contested: dict[str, dict[str, list[Spec]]] = {k: {} for k in KINDS}
        #: (plugin name, error) of plugins that failed to load: named when a lookup fails, since
        #: the missing name may well be theirs
        self.failed: list[tuple[str, str]] = []
        #: hooks that raised or registered something invalid; they contributed nothing
        self.hook_failures: list[HookFailure] = []

    def add(self, spec: Spec) -> None:
        """Add one spec. An invalid spec raises :class:`PluginError`; a name another plugin
        already registered for the same kind becomes contested (see the class docstring)."""
        problem = spec_problem(spec)
        if problem is not None:
            raise PluginError(f"plugin {spec.plugin!r} {problem}")
        existing = self._specs[spec.kind].get(spec.name)
        holders = self._contested[spec.kind].get(spec.name) or ([existing] if existing is not None else [])
        if any(s.plugin == spec.plugin for s in holders):
            raise PluginError(f"plugin {spec.plugin!r} registered {spec.kind} {spec.name!r} twice")
        if holders:
            self._specs[spec.kind].pop(spec.name, None)
            self._contested[spec.kind][spec.name] = [*holders, spec]
        else:
            self._specs[spec.kind][spec.name] = spec

    def conflicts(self, kind: str | None = None) -> list[Conflict]:
        """Contested names (of ``kind``, or of every kind), in kind then name order."""
        return [
            Conflict(k, name, tuple(sorted(s.plugin for s in specs)))
            for k in (KINDS if kind is None else (kind,))
            for name, specs in sorted(self._contested[k].items())
        ]

    def plugins_of(self, kind: str, name: str) -> list[str]:
        """The plugins that registered ``name`` of ``kind`` (two or more when it is contested)."""
        specs = self._contested[kind].get(name) or [s for s in [self._specs[kind].get(name)] if s is not None]
        return [s.plugin for s in specs]

    def problems(self) -> list[str]:
        """One line per conflict and per failed hook, saying what is left out (what the CLI reports)."""
        return [f"{c.message()}; it is left out until then" for c in self.conflicts()] + [
            f"{f.message()}; the {PLURAL[f.kind]} it registers are left out" for f in self.hook_failures
        ]

    def names(self, kind: str) -> list[str]:
        """Usable names (contested ones left out), sorted."""
        return sorted(self._specs[kind])

    def in_order(self, kind: str) -> list[Spec]:
        """Specs in registration order (plugins list metrics in their conventional order);
        contested names left out."""
        return list(self._specs[kind].values())

    def all(self, kind: str) -> list[Spec]:
        """Specs sorted by name; contested names left out."""
        return [self._specs[kind][n] for n in self.names(kind)]

    def get(self, kind: str, name: str) -> Spec:
        try:
            return self._specs[kind][name]
        except KeyError:
            pass
        if name in self._contested.get(kind, {}):
            (conflict,) = [c for c in self.conflicts(kind) if c.name == name]
            raise PluginError(conflict.message())
        for f in self.hook_failures:
            if f.kind == kind and name in f.names:
                raise PluginError(f"{kind} {name!r} is unavailable: {f.message()}")
        known = self.names(kind)
        # names differing only in case first ('OSIE' had no suggestion; found by QA)
        close = [k for k in known if k.lower() == str(name).lower()] or \
            difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = f"; known: {', '.join(known)}" if known and not close else ""
        failed = "".join(f" Plugin {p!r} failed to load ({err})." for p, err in self.failed)
        failed += "".join(f" Plugin {f.plugin!r} failed in {f.hook} ({f.error})."
                          for f in self.hook_failures if f.kind == kind)
        text = f"unknown {kind} {name!r}{hint}{listing}"
        if failed and not text.endswith("?"):
            text += "."
        raise HarnessError(text + failed)

    def __contains__(self, item: tuple[str, str]) -> bool:
        """Whether ``(kind, name)`` is usable (contested names are not)."""
        kind, name = item
        return name in self._specs.get(kind, {})
