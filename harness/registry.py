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

KINDS = ("model", "dataset", "metric", "attention", "task")


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
        """Resolve the factory and call it (for functions registered as-is, use :meth:`resolve`)."""
        return self.resolve()(**kwargs)


class Registry:
    """Everything the loaded plugins registered, by kind and name."""

    def __init__(self) -> None:
        self._specs: dict[str, dict[str, Spec]] = {k: {} for k in KINDS}
        #: (plugin name, error) of plugins that failed to load: named when a lookup fails, since
        #: the missing name may well be theirs
        self.failed: list[tuple[str, str]] = []

    def add(self, spec: Spec) -> None:
        if spec.kind not in self._specs:
            raise PluginError(f"plugin {spec.plugin!r} registered unknown kind {spec.kind!r}")
        if not isinstance(spec.name, str) or not spec.name:
            raise PluginError(f"plugin {spec.plugin!r} registered a {spec.kind} without a name")
        if not isinstance(spec.factory, str) and not callable(spec.factory):
            raise PluginError(
                f"plugin {spec.plugin!r}: {spec.kind} {spec.name!r} factory must be 'module:attr' or callable"
            )
        if isinstance(spec.factory, str) and not all(spec.factory.partition(":")[::2]):
            raise PluginError(
                f"plugin {spec.plugin!r}: {spec.kind} {spec.name!r} factory {spec.factory!r} is not 'module:attr'"
            )
        existing = self._specs[spec.kind].get(spec.name)
        if existing is not None:
            raise PluginError(
                f"{spec.kind} {spec.name!r} is registered twice: by plugin {existing.plugin!r} "
                f"and by plugin {spec.plugin!r}"
            )
        self._specs[spec.kind][spec.name] = spec

    def names(self, kind: str) -> list[str]:
        return sorted(self._specs[kind])

    def in_order(self, kind: str) -> list[Spec]:
        """Specs in registration order (plugins list metrics in their conventional order)."""
        return list(self._specs[kind].values())

    def all(self, kind: str) -> list[Spec]:
        return [self._specs[kind][n] for n in self.names(kind)]

    def get(self, kind: str, name: str) -> Spec:
        try:
            return self._specs[kind][name]
        except KeyError:
            pass
        known = self.names(kind)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = f" Known: {', '.join(known)}." if known and not close else ""
        failed = "".join(f" Plugin {p!r} failed to load ({err})." for p, err in self.failed)
        raise HarnessError(f"unknown {kind} {name!r}{hint}{listing}{failed}")

    def __contains__(self, item: tuple[str, str]) -> bool:
        kind, name = item
        return name in self._specs.get(kind, {})
