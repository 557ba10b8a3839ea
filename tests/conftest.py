"""Shared fixtures: the real OSIE data and one Arrow conversion of it per test session.

``HARNESS_DATA_DIR`` defaults to ``<repo>/../shared/data`` (OSIE is then ``$HARNESS_DATA_DIR/osie``).
``HARNESS_CACHE_DIR`` defaults to a session temporary folder, so tests never write to
``~/.cache`` and the 700-image conversion runs at most once per session (set the variable yourself
to reuse a cache across sessions).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HARNESS_DATA_DIR", str(REPO.parent / "shared" / "data"))
_USER_CACHE = os.environ.get("HARNESS_CACHE_DIR")


@pytest.fixture(scope="session")
def osie_cache(tmp_path_factory) -> Path:
    """Cache root shared by the whole session (also exported as ``HARNESS_CACHE_DIR``, so CLI
    subprocesses and code that builds datasets by name reuse the same conversion)."""
    if _USER_CACHE:
        return Path(_USER_CACHE)
    path = tmp_path_factory.mktemp("harness-cache")
    os.environ["HARNESS_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session", autouse=True)
def _harness_cache_env(osie_cache):
    """Point ``HARNESS_CACHE_DIR`` at the session cache for every test (cheap: an empty folder)."""
    return osie_cache


@pytest.fixture(scope="session")
def osie_dir() -> Path:
    """The real OSIE folder. Missing data fails the tests that need it (never a silent skip)."""
    path = Path(os.environ["HARNESS_DATA_DIR"]) / "osie"
    if not (path / "eye" / "fixations.mat").is_file():
        pytest.fail(f"OSIE data not found at {path} (set HARNESS_DATA_DIR to the folder holding osie/)")
    return path


@pytest.fixture(scope="session")
def osie(osie_dir, osie_cache):
    """The loaded :class:`plugins.datasets.osie.OSIE` object (after its conversion is cached). Built
    directly, not through the registry, so a broken unrelated plugin cannot take these fixtures
    down (tests/test_osie.py covers loading by name)."""
    from plugins.datasets.osie import OSIE

    obj = OSIE(data_dir=osie_dir, cache_dir=osie_cache)
    obj.load()
    return obj


@pytest.fixture(scope="session")
def osie_dataset(osie):
    """The canonical ``datasets.Dataset`` of OSIE (700 records), converted once per session."""
    return osie.load()


@pytest.fixture
def small_osie(osie_dir, tmp_path):
    """Factory for a small real OSIE folder in tmp_path: the first ``n`` entries of the real
    ``fixations.mat`` (re-saved with scipy, optionally edited by ``edit(cell)`` where ``cell`` is
    the (n, 1) struct cell as ``scipy.io.loadmat`` returns it) and copies of their stimuli."""
    import shutil

    import scipy.io

    def build(name: str = "osie", n: int = 6, edit=None) -> Path:
        dest = tmp_path / name
        (dest / "eye").mkdir(parents=True)
        (dest / "stimuli").mkdir()
        cell = scipy.io.loadmat(str(osie_dir / "eye" / "fixations.mat"))["fixations"][:n].copy()
        if edit is not None:
            edit(cell)
        scipy.io.savemat(str(dest / "eye" / "fixations.mat"), {"fixations": cell})
        for i in range(n):
            img = str(cell[i, 0][0, 0]["img"][0])
            shutil.copyfile(osie_dir / "stimuli" / img, dest / "stimuli" / img)
        return dest

    return build
