"""Gaze datasets: the :class:`GazeDataset` base class and lookup by registered name.

Importing this package is light (no ``datasets``, numpy or scipy at import time) because dataset
plugins subclass :class:`GazeDataset` at module level and ``harness datasets`` must stay fast.
Fixation density maps live in :mod:`harness.data.density`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..errors import DataError, PluginError
from .base import GazeDataset

if TYPE_CHECKING:  # pragma: no cover
    import datasets

__all__ = ["GazeDataset", "DataError", "get_gaze_dataset", "load_gaze_dataset"]


def get_gaze_dataset(name: str, data_dir: str | os.PathLike | None = None,
                     cache_dir: str | os.PathLike | None = None) -> GazeDataset:
    """Build the registered dataset plugin ``name`` (nothing is read or converted yet). ``data_dir``
    is the dataset's own folder or a folder holding ``<name>/`` (:func:`paths.dataset_folder`)."""
    from ..plugins import get_registry
    from .paths import dataset_folder

    spec = get_registry().get("dataset", name)
    obj = spec.load(data_dir=dataset_folder(name, data_dir), cache_dir=cache_dir)
    if not isinstance(obj, GazeDataset):
        raise PluginError(
            f"dataset {name!r} from plugin {spec.plugin!r}: factory {spec.factory_path!r} returned "
            f"{type(obj).__name__}, not a harness.data.GazeDataset"
        )
    if obj.name != name:  # the name also picks its data folder and cache: two names would look in two places
        raise PluginError(
            f"dataset {name!r} from plugin {spec.plugin!r}: its class {type(obj).__name__} is named "
            f"{obj.name!r}; the class's name must be the registered one"
        )
    return obj


def load_gaze_dataset(name: str, data_dir: str | os.PathLike | None = None,
                      cache_dir: str | os.PathLike | None = None) -> "tuple[GazeDataset, datasets.Dataset]":
    """The plugin object and its canonical ``datasets.Dataset`` (converted once, then cached)."""
    obj = get_gaze_dataset(name, data_dir=data_dir, cache_dir=cache_dir)
    return obj, obj.load()
