"""The results store: run folders written by one process at a time, read back and checked.

``files`` writes atomically and hashes; ``writer`` owns a run folder while it is computed;
``store`` reads run folders back; ``summary`` turns per-image rows into a run's summary;
``verify`` checks that a run's files hold together. The layout is documented in
``docs/results.md``.
"""

from .files import atomic_write_bytes, atomic_write_json, atomic_write_parquet, sha256_file
from .store import SCHEMA_VERSION, Run, iter_rows, load_runs, read_run, run_dirs, run_id_for, settings_hash

__all__ = [
    "SCHEMA_VERSION", "Run", "atomic_write_bytes", "atomic_write_json", "atomic_write_parquet", "iter_rows",
    "load_runs", "read_run", "run_dirs", "run_id_for", "settings_hash", "sha256_file",
]
