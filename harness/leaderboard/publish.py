"""``harness leaderboard publish``: the leaderboard as a Hugging Face Hub dataset repo.

One publish is ONE commit (``HfApi.create_commit``) holding the whole tree, so a failed upload
leaves the repo as it was. The tree (also what ``--to-folder`` writes)::

    README.md                  dataset card: YAML ``configs`` (leaderboard = default, per_image) + table
    data/leaderboard.parquet   one row per run, provenance columns included (see hub_table)
    data/per_image.parquet     one row per stimulus per run

Publishing merges: the current ``data/*.parquet`` are downloaded at the repo's head commit (a
missing file or repo means "nothing published yet"), earlier rows stay, a run published again
replaces its own row (key ``run_id``), and ``latest`` is recomputed. The commit names that head
commit as its parent, so if someone published in between, the Hub refuses the commit instead of
silently dropping their rows.

Network settings come from the environment at call time: ``HF_ENDPOINT``, ``HF_TOKEN`` and
``HF_HUB_OFFLINE``. The token is handed to ``huggingface_hub`` only; it is never printed, logged or
written (error messages are scrubbed of it as well).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import HarnessError
from ..results import Run, atomic_write_bytes, load_runs
from . import hub_table
from .hub_table import LEADERBOARD_FILE, PER_IMAGE_FILE

REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
DEFAULT_ENDPOINT = "https://huggingface.co"
OFFLINE_MESSAGE = ("HF_HUB_OFFLINE is set, so the Hub cannot be reached; unset it, or use --to-folder DIR "
                   "to write the files locally")


@dataclass
class PublishResult:
    repo: str | None
    files: list[str]
    n_new: int
    n_rows: int
    commit_url: str | None = None
    folder: Path | None = None
    space_url: str | None = None
    notes: list[str] = field(default_factory=list)


# --- environment -------------------------------------------------------------------------------


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_token() -> str | None:
    return os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None


def is_offline() -> bool:
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", "")
    return value.upper() in {"1", "ON", "YES", "TRUE"} or constants.is_offline_mode()


def check_repo_id(repo: str, option: str = "--repo") -> str:
    if not isinstance(repo, str) or not REPO_RE.match(repo) or ".." in repo or repo.endswith((".git", "-", ".")):
        raise HarnessError(f"{option} {repo!r} is not a Hub repo id of the form ORG/NAME")
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:  # the Hub's own rules ('--', length), checked before anything is sent
        validate_repo_id(repo)
    except HFValidationError as exc:
        raise HarnessError(f"{option} {repo!r} is not a valid Hub repo id: {' '.join(str(exc).split())}") from None
    return repo


def _scrub(text: str) -> str:
    token = hub_token()
    text = " ".join(str(text).split())  # one line
    if token:
        text = text.replace(token, "***")
    return text


def _server_message(exc: Any) -> str:
    response = getattr(exc, "response", None)
    msg = getattr(exc, "server_message", None)
    if not msg and response is not None:
        try:
            body = response.json()
            msg = body.get("error") if isinstance(body, dict) else None
        except Exception:
            msg = None
    return _scrub(msg or "")


def hub_error(exc: BaseException, step: str, *, published: str | None = None, access: str = "write") -> HarnessError:
    """One line that says what failed and what to do; ``published`` says what already landed."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    tail = "; nothing was published" if published is None else (f"; {published}" if published else "")
    cause = exc
    if isinstance(exc, LocalEntryNotFoundError) and exc.__cause__ is not None:
        cause = exc.__cause__  # hf_hub_download hides the HEAD call's error behind this one
    if isinstance(cause, OfflineModeIsEnabled):
        return HarnessError(OFFLINE_MESSAGE)
    if isinstance(cause, HfHubHTTPError) and getattr(cause, "response", None) is not None:
        status = cause.response.status_code
        message = _server_message(cause)
        detail = f" ({message})" if message else ""
        if status in (401, 403):
            need = "with write access to the repo" if access == "write" else "that can read the repo"
            why = f"HTTP {status}: {message}" if message else f"HTTP {status}"
            return HarnessError(f"authentication failed while {step} ({why}): set HF_TOKEN to a token {need}{tail}")
        if status == 412:
            return HarnessError(f"the repo changed on the Hub while {step} (HTTP 412: someone else published); "
                                f"run publish again{tail}")
        if status >= 500:
            return HarnessError(f"the Hub answered {status} while {step}{detail}; try again later{tail}")
        return HarnessError(f"the Hub answered {status} while {step}{detail}{tail}")
    if _is_commit_timeout(cause):
        # the request went out and the Hub may have applied it before its answer was lost: saying
        # "nothing was published" could make someone publish twice, or trust a commit that never landed
        where = getattr(getattr(cause, "request", None), "url", None)
        repo_url = re.sub(r"/api/(datasets|spaces|models)/([^/]+/[^/]+)/commit/.*$", r"/\1/\2", str(where))
        # what landed before (the data, when the Space's commit timed out), not that the rest did not
        done = f"{published.split(', only ')[0]}; " if published else ""
        return HarnessError(f"no answer from {hub_endpoint()} while {step} ({type(cause).__name__}: "
                            f"{_scrub(str(cause))}): {done}the commit may or may not have landed; check "
                            f"{repo_url} before publishing again")
    return HarnessError(f"cannot reach {hub_endpoint()} while {step}: {type(cause).__name__}: {_scrub(str(cause))}{tail}")


def _is_commit_timeout(exc: BaseException) -> bool:
    """A timeout waiting for the answer to a commit request (not to any earlier, harmless request)."""
    try:
        request = getattr(exc, "request", None)
    except RuntimeError:  # httpx's property raises when the exception carries no request
        request = None
    name = type(exc).__name__
    return "Timeout" in name and "Connect" not in name and request is not None and "/commit/" in str(request.url)


def _hub_call(step: str, fn: Callable[..., Any], *args: Any, published: str | None = None, access: str = "write",
              **kwargs: Any) -> Any:
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return fn(*args, **kwargs)
    except HarnessError:
        raise
    except (HfHubHTTPError, LocalEntryNotFoundError, ConnectionError) as exc:
        raise hub_error(exc, step, published=published, access=access) from None
    except ValueError as exc:  # e.g. "Invalid metadata in README.md", raised from the Hub's 400 answer
        if isinstance(exc.__cause__, HfHubHTTPError):
            raise hub_error(exc.__cause__, step, published=published, access=access) from None
        raise
    except RuntimeError as exc:  # "Error while uploading 'data/x.parquet' to the Hub.": a failed LFS upload
        if exc.__cause__ is not None and str(exc).startswith("Error while uploading"):
            raise _upload_error(exc, step, published) from None
        raise
    except Exception as exc:  # transport errors of the HTTP client (httpx2.ConnectError, timeouts)
        if type(exc).__module__.split(".")[0] in {"httpx", "httpx2", "httpcore", "httpcore2"}:
            raise hub_error(exc, step, published=published, access=access) from None
        raise


def _upload_error(exc: RuntimeError, step: str, published: str | None) -> HarnessError:
    """The file storage the Hub hands uploads to (S3) refused or dropped one: its 403 is an expired
    or refused upload link, not the Hub token, so the authentication advice of hub_error would mislead."""
    from huggingface_hub.errors import HfHubHTTPError

    tail = "; nothing was published" if published is None else (f"; {published}" if published else "")
    what = re.search(r"'([^']*)'", str(exc))
    name = what.group(1) if what else "a file"
    cause = exc.__cause__
    response = getattr(cause, "response", None) if isinstance(cause, HfHubHTTPError) else None
    why = f"HTTP {response.status_code}" if response is not None else f"{type(cause).__name__}: {_scrub(str(cause))}"
    return HarnessError(f"uploading {name} to the Hub's file storage failed while {step} ({why}); "
                        f"try again later{tail}")


# --- the tree ------------------------------------------------------------------------------------


def _parquet_bytes(table) -> bytes:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def dataset_card(rows: Sequence[dict[str, Any]], repo: str | None, primary: str | None = None) -> str:
    """README.md of the dataset repo: YAML metadata whose ``configs`` make
    ``load_dataset(repo)`` return the leaderboard rows (default) and ``load_dataset(repo,
    "per_image")`` the per-image rows; then the table of latest rows and the schema."""
    import yaml

    from .. import __version__

    licences = dataset_licences(rows)
    meta = {
        "pretty_name": "gaze-harness leaderboard",
        "license": card_license(licences),
        "tags": ["gaze", "eye-tracking", "saliency", "attention", "leaderboard", "gaze-harness"],
        "configs": [
            {"config_name": "leaderboard", "data_files": [{"split": "train", "path": LEADERBOARD_FILE}],
             "default": True},
            {"config_name": "per_image", "data_files": [{"split": "train", "path": PER_IMAGE_FILE}]},
        ],
    }
    name = repo or "ORG/NAME"
    latest = [r for r in rows if r.get("latest", True)]
    lines = [
        "---",
        yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        "# gaze-harness leaderboard",
        "",
        "How well the attention of neural networks agrees with human gaze, and how that relates to their "
        "task performance. Produced by `harness leaderboard publish` "
        f"(gaze-harness {__version__}); {len(rows)} runs, {len(latest)} latest.",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'leaderboard = load_dataset("{name}", split="train")             # one row per run',
        f'per_image = load_dataset("{name}", "per_image", split="train")  # one row per stimulus per run',
        "```",
        "",
        "## Latest results",
        "",
        "↑ higher is better, ↓ lower is better. The human ceiling (leave-one-subject-out) and the baselines "
        "are reference rows.",
        "",
        hub_table.markdown_table(_card_rows(rows), primary),
        "",
        "## Licences",
        "",
        "The results are computed on these gaze datasets, each under its own terms"
        + (":" if card_license(licences) != "other" else " (so the card's `license` is `other`):"),
        "",
        *[f"- `{hub_table._md_escape(name)}`: {hub_table._md_escape(text or UNKNOWN_LICENCE)}"
          for name, text in licences.items()],
        "",
        "## Schema",
        "",
        f"`{LEADERBOARD_FILE}`: one row per run, key `run_id`.",
        "",
        "- identity: `run_id`, `model`, `attention`, `dataset`, `task`, `kind` (model, baseline, ceiling), "
        "`metric_profile`, `scoring` (raw: the maps as they came; calibrated: as fixation densities), "
        "`n_images`, `n_failed`, `n_degenerate` (constant maps);",
        "- one float column per gaze metric (mean over images; directions in `metric_directions`, JSON; "
        "calibrated rows add `ll`, bits per fixation, and `ig_explained`, 100 x IG / IG of the calibrated human "
        "ceiling), one `task:<name>` column per task metric (`task_primary` names the main one), and "
        "`nonfinite` (JSON: per metric, the stimuli whose value was NaN or infinite and left out of the mean);",
        "- provenance: `harness_version`, `harness_source` (SHA-256 of the harness' own code), `model_id`, "
        "`weights_sha256`, `revision`, `dataset_fingerprint`, `seed`, `batch_size`, `wall_time_s`, `started_at`, "
        "`finished_at`, `settings_sha256`, `packages` (JSON), `settings` (JSON), `manifest` (JSON);",
        "- `latest`: true for the last finished run of each model x attention x dataset x task x metric profile "
        "x scoring x stimuli x blur (`metric_params`); `published_at`.",
        "",
        f"`{PER_IMAGE_FILE}`: `run_id`, `model`, `attention`, `dataset`, `task`, `kind`, `metric_profile`, "
        "`scoring`, `stimulus_id`, `status`, `error`, then the per-image metric and `task:` score columns of the "
        "run (calibrated runs: `ll`, in bits per fixation, too).",
        "",
    ]
    return "\n".join(lines)


def _card_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as the card's table shows them: a model or attention named by a local path (a local
    ``hf:`` folder) shows its last part only (:func:`harness.leaderboard.site.public_text`)."""
    from .site import public_text

    return [{**r, **{k: public_text(r[k]) for k in ("model", "attention") if isinstance(r.get(k), str)}}
            for r in rows]


UNKNOWN_LICENCE = "unknown (its plugin was not installed where this was published)"
#: licence identifiers the Hub knows (the card's ``license:`` field); anything else is ``other``
HUB_LICENSES = frozenset({
    "apache-2.0", "mit", "bsd", "bsd-2-clause", "bsd-3-clause", "bsd-3-clause-clear", "isc", "zlib", "unlicense",
    "wtfpl", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0",
    "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0",
    "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "gpl-2.0", "gpl-3.0", "lgpl-2.1", "lgpl-3.0",
    "agpl-3.0", "mpl-2.0", "epl-1.0", "epl-2.0", "odc-by", "odbl", "pddl", "cdla-sharing-1.0",
    "cdla-permissive-1.0", "cdla-permissive-2.0", "c-uda", "openrail", "afl-3.0", "artistic-2.0", "bsl-1.0",
    "ecl-2.0", "eupl-1.1",
})


def dataset_licences(rows: Sequence[dict[str, Any]]) -> dict[str, str | None]:
    """Dataset name -> its licence (as ``harness datasets`` lists it) for every dataset in ``rows``;
    None for a dataset whose plugin is not installed here."""
    from ..cli import catalogue_licences, dataset_licence
    from ..plugins import get_registry

    reg = get_registry()
    catalogue = catalogue_licences()
    out: dict[str, str | None] = {}
    for name in sorted({str(r.get("dataset")) for r in rows if r.get("dataset")}):
        out[name] = dataset_licence(reg.get("dataset", name), catalogue) if ("dataset", name) in reg else None
    return out


def card_license(licences: dict[str, str | None]) -> str:
    """The card's ``license:``: the datasets' licence when they all have the same one the Hub
    knows, else ``other`` (the card's text lists each; ``unknown`` when none is known)."""
    if not licences or all(v is None for v in licences.values()):
        return "unknown"
    ids = {(v or "").strip().lower() for v in licences.values()}
    if len(ids) == 1 and ids <= HUB_LICENSES:
        return ids.pop()
    return "other"


def space_card(repo: str | None, space: str) -> str:
    import yaml

    meta = {"title": "gaze-harness leaderboard", "emoji": "👀", "colorFrom": "blue", "colorTo": "green",
            "sdk": "static", "app_file": "index.html", "pinned": False}
    data = f"The data: {hub_endpoint()}/datasets/{repo}\n" if repo else ""  # HF_ENDPOINT: a private Hub
    return (f"---\n{yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip()}\n---\n\n"
            f"# gaze-harness leaderboard\n\nStatic page built by `harness leaderboard publish --space {space}`.\n{data}")


def build_tree(rows: Sequence[dict[str, Any]], per_image, repo: str | None, primary: str | None = None) -> dict[str, bytes]:
    """Every file of one publish, path in repo -> bytes."""
    hub_table.default_primary(rows, primary)  # unknown --primary fails before anything is written
    return {
        LEADERBOARD_FILE: _parquet_bytes(hub_table.rows_to_table(rows)),
        PER_IMAGE_FILE: _parquet_bytes(per_image),
        "README.md": dataset_card(rows, repo, primary).encode("utf-8"),
    }


#: the most rows a published file is read with: a million runs, twenty million per-image rows (1,000
#: runs of 20,000 stimuli); checked from the file's footer before its data is read
MAX_PUBLISHED_ROWS = {"leaderboard": 1_000_000, "per-image": 20_000_000}


def _read_parquet(path: Path | None, what: str, name: str | None = None):
    """``path`` read as a table (None when absent); damage is one line naming the file, or ``name``
    (a downloaded file's place on the Hub, not its temporary copy)."""
    import pyarrow.parquet as pq

    if path is None or not Path(path).is_file():
        return None
    try:
        with open(path, "rb") as f:  # a file object: pyarrow would read a path '~/x' as the home folder's
            rows = pq.ParquetFile(f).metadata.num_rows
            limit = MAX_PUBLISHED_ROWS[what]
            if rows > limit:  # a small file declaring 1e8 rows of one repeated value took gigabytes (QA)
                raise HarnessError(f"{name or path}: the {what} Parquet file declares {rows:,} rows, more than a "
                                   f"leaderboard holds ({limit:,}); not read")
            f.seek(0)
            return pq.read_table(f)
    except HarnessError:
        raise
    except Exception as exc:
        fix = "; repair or remove it on the Hub, then publish again" if name else ""
        why = " ".join(str(exc).replace(str(path), "the file").split())[:200]  # pyarrow names the temporary copy
        raise HarnessError(f"{name or path}: unreadable {what} Parquet file ({type(exc).__name__}: {why}){fix}") from exc


def _public_text(value: Any) -> Any:
    from .site import public_text

    return public_text(value) if isinstance(value, str) else value


def _public_run_id(run_id: str, model: Any) -> str:
    from .site import public_run_id

    return public_run_id(run_id, model)


def public_row(row: dict[str, Any]) -> dict[str, Any]:
    """A run's row as it is published: in its settings and manifest (the command line, a model
    folder, data folders) every absolute local path shortened to ``…/<last part>`` and exception
    texts left out, as the page and the card show them (``settings_sha256`` stays the hash of the
    run's own settings.json); its run id as :func:`harness.leaderboard.site.public_run_id` makes it."""
    import json

    from .site import _with_run_id, public_value

    out = dict(row)
    out["run_id"] = _public_run_id(row["run_id"], row.get("model"))
    for key in ("settings", "manifest"):
        if isinstance(out.get(key), str) and out[key]:
            out[key] = json.dumps(_with_run_id(public_value(json.loads(out[key])), out["run_id"]), sort_keys=True,
                                  default=str)
    for key in ("model", "model_id", "revision"):
        out[key] = _public_text(out.get(key))
    return out


def merged_tree(runs: Sequence[Run], existing_board, existing_per_image, repo: str | None, primary: str | None,
                board_name: str = LEADERBOARD_FILE) -> tuple[dict[str, bytes], list[dict[str, Any]], int]:
    local = hub_table.rows_from_runs(runs)
    new_rows = [public_row(r) for r in local]
    old_rows = (hub_table.check_rows(hub_table.table_to_rows(existing_board), board_name)
                if existing_board is not None else [])
    # a run an earlier version published under its local id (the slug of an hf: folder's path) is
    # the same run: replaced, not kept beside its public id as a second latest row
    renamed = {r["run_id"] for r in local} - {r["run_id"] for r in new_rows}
    old_rows = [r for r in old_rows if r.get("run_id") not in renamed]
    rows = hub_table.merge_rows(old_rows, new_rows)
    # rows published before per-image rows said their metric profile and scoring get them from their run's row
    known = {r["run_id"]: {"metric_profile": r.get("metric_profile"), "scoring": hub_table.scoring_of(r)} for r in rows}
    replaced = [r["run_id"] for r in new_rows] + sorted(renamed)
    per_image = hub_table.per_image_table(runs, existing_per_image, replace_ids=replaced,
                                          clean=_public_text, public_id=_public_run_id, known=known)
    return build_tree(rows, per_image, repo, primary), rows, len(new_rows)


# --- publishing ----------------------------------------------------------------------------------


def _load_finished(results_dir: Path | str) -> list[Run]:
    runs = [r for r in load_runs(results_dir) if r.finished]
    if not runs:
        raise HarnessError(f"no finished runs under {results_dir}")
    return runs


def publish_to_folder(results_dir: Path | str, folder: Path | str, *, repo: str | None = None,
                      primary: str | None = None) -> PublishResult:
    """Write exactly the tree a Hub publish would commit into ``folder`` (merging with the
    leaderboard already there, as a publish merges with the repo). Makes no request."""
    runs = _load_finished(results_dir)
    folder = Path(folder)
    if folder.is_dir() and any(folder.iterdir()) and not (folder / LEADERBOARD_FILE).is_file():
        # its README.md would be replaced by the card: only an empty folder or a published one
        raise HarnessError(f"--to-folder {folder} is not empty and holds no {LEADERBOARD_FILE}: give a new or empty "
                           "folder, or one written by publish --to-folder")
    board = _read_parquet(folder / LEADERBOARD_FILE, "leaderboard")
    per_image = _read_parquet(folder / PER_IMAGE_FILE, "per-image")
    files, rows, n_new = merged_tree(runs, board, per_image, repo, primary, str(folder / LEADERBOARD_FILE))
    for path in (LEADERBOARD_FILE, PER_IMAGE_FILE, "README.md"):  # the card last: it describes the data
        atomic_write_bytes(folder / path, files[path])
    return PublishResult(repo=repo, files=sorted(files), n_new=n_new, n_rows=len(rows), folder=folder)


def _download(api_kwargs: dict[str, Any], repo: str, filename: str, revision: str, cache_dir: str) -> Path | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError

    try:
        return Path(hf_hub_download(repo, filename, repo_type="dataset", revision=revision, cache_dir=cache_dir,
                                    **api_kwargs))
    except RemoteEntryNotFoundError:
        return None  # nothing published under that name yet


def _repo_info(api, repo: str):
    """The dataset repo's info (head commit, visibility), or None when it does not exist."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        return api.repo_info(repo, repo_type="dataset")
    except RepositoryNotFoundError:
        return None


def _download_or_missing_repo(api_kwargs, repo, filename, revision, cache_dir) -> Path | None:
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        return _download(api_kwargs, repo, filename, revision, cache_dir)
    except GatedRepoError:
        raise
    except RepositoryNotFoundError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status == 401 and api_kwargs.get("token"):
            # the Hub says 401 both for a missing repo without a token and for a token it refuses:
            # with one set, "set HF_TOKEN" sent the user to change nothing
            raise HarnessError(f"the Hub refused the token in HF_TOKEN (HTTP 401) while downloading {filename} of "
                               f"{repo}: set HF_TOKEN to a valid token that can read the repo") from None
        raise HarnessError(f"dataset repo {repo} not found on {hub_endpoint()} (if it is private, set HF_TOKEN)") from None


def publish(results_dir: Path | str, repo: str, *, space: str | None = None, private: bool = False,
            primary: str | None = None, data_dir: Path | None = None, cache_dir: Path | None = None,
            n_examples: int = 12, echo: Callable[[str], None] = lambda s: None,
            warn: Callable[[str], None] | None = None) -> PublishResult:
    """Merge the finished runs under ``results_dir`` into the leaderboard of dataset repo ``repo``
    in one commit; optionally upload the static page to Space ``space`` (a second commit, after
    the data landed)."""
    check_repo_id(repo)
    if space is not None:
        check_repo_id(space, "--space")
    runs = _load_finished(results_dir)
    if is_offline():
        raise HarnessError(OFFLINE_MESSAGE)
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    quiet_before = are_progress_bars_disabled()
    disable_progress_bars()  # our own one-line messages say what happens; no bars in logs
    try:
        return _publish(runs, repo, space=space, private=private, primary=primary, data_dir=data_dir,
                        cache_dir=cache_dir, n_examples=n_examples, echo=echo, warn=warn or echo)
    finally:
        if not quiet_before:
            enable_progress_bars()


def _publish(runs: Sequence[Run], repo: str, *, space, private, primary, data_dir, cache_dir, n_examples,
             echo, warn) -> PublishResult:
    from huggingface_hub import CommitOperationAdd, HfApi

    endpoint, token = hub_endpoint(), hub_token()
    api = HfApi(endpoint=endpoint, token=token)
    api_kwargs = {"endpoint": endpoint, "token": token}
    with tempfile.TemporaryDirectory(prefix="harness-publish-") as tmp:
        info = _hub_call(f"reading dataset repo {repo}", _repo_info, api, repo)
        if info is None:
            echo(f"creating dataset repo {repo}")
            _hub_call(f"creating dataset repo {repo}", api.create_repo, repo, repo_type="dataset",
                      private=private, exist_ok=True)
            info = _hub_call(f"reading dataset repo {repo}", _repo_info, api, repo)
            if info is None:
                raise HarnessError(f"dataset repo {repo} cannot be read after creating it; check that HF_TOKEN "
                                   "has access to it; nothing was published")
        elif private and not info.private:
            raise HarnessError(f"dataset repo {repo} is public and --private was given; make it private on the "
                               "Hub first (--private only applies to repos this command creates)")
        parent = info.sha
        board = _read_parquet(_hub_call(f"downloading {LEADERBOARD_FILE} of {repo}", _download, api_kwargs,
                                        repo, LEADERBOARD_FILE, parent, tmp), "leaderboard",
                              f"{LEADERBOARD_FILE} of dataset repo {repo} (commit {parent})")
        per_image = _read_parquet(_hub_call(f"downloading {PER_IMAGE_FILE} of {repo}", _download, api_kwargs,
                                            repo, PER_IMAGE_FILE, parent, tmp), "per-image",
                                  f"{PER_IMAGE_FILE} of dataset repo {repo} (commit {parent})")
        files, rows, n_new = merged_tree(runs, board, per_image, repo, primary,
                                         f"{LEADERBOARD_FILE} of dataset repo {repo} (commit {parent})")
        operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=data) for p, data in sorted(files.items())]
        message = f"Publish {n_new} run(s) with gaze-harness ({len(rows)} rows in the leaderboard)"
        info = _hub_call(f"committing to dataset repo {repo}", api.create_commit, repo, operations,
                         commit_message=message, repo_type="dataset", parent_commit=parent)
        result = PublishResult(repo=repo, files=sorted(files), n_new=n_new, n_rows=len(rows),
                               commit_url=getattr(info, "commit_url", None))
        echo(f"published {n_new} run(s) to {endpoint}/datasets/{repo} ({len(rows)} rows)")
        if space is not None:
            done = f"the leaderboard data was published to {repo}, only the Space is not updated"
            result.space_url = _publish_space(api, space, rows, runs, tmp, private=private, repo=repo,
                                              data_dir=data_dir, cache_dir=cache_dir, primary=primary,
                                              n_examples=n_examples, published=done, warn=warn)
            echo(f"published the page to {result.space_url}")
    return result


def _publish_space(api, space: str, rows, runs, tmp: str, *, private: bool, repo: str, data_dir, cache_dir,
                   primary, n_examples: int, published: str, warn=None) -> str:
    from huggingface_hub import CommitOperationAdd

    from .site import MARKER, write_site

    site = Path(tmp) / "space"
    write_site(rows, site, runs=runs, data_dir=data_dir, cache_dir=cache_dir, primary=primary,
               n_examples=n_examples, warn=warn)
    (site / "README.md").write_text(space_card(repo, space), encoding="utf-8")
    operations = [CommitOperationAdd(path_in_repo=p.relative_to(site).as_posix(), path_or_fileobj=str(p))
                  for p in sorted(site.rglob("*")) if p.is_file() and p.name != MARKER]
    _hub_call(f"creating Space {space}", api.create_repo, space, repo_type="space", space_sdk="static",
              private=private, exist_ok=True, published=published)
    _hub_call(f"committing to Space {space}", api.create_commit, space, operations,
              commit_message="Update the gaze-harness leaderboard page", repo_type="space", published=published)
    return f"{hub_endpoint()}/spaces/{space}"


# --- reading a published leaderboard -------------------------------------------------------------


def load_published(source: str | Path) -> list[dict[str, Any]]:
    """The rows of a published leaderboard: ``source`` is a folder (as written by ``--to-folder``,
    or a ``leaderboard.parquet`` file) or a Hub dataset repo ``ORG/NAME``."""
    path = Path(source)
    if path.exists():
        file = path / LEADERBOARD_FILE if path.is_dir() else path
        if not file.is_file():
            raise HarnessError(f"{path}: no {LEADERBOARD_FILE} here (write one with `harness leaderboard publish "
                               "--to-folder`)")
        return _leaderboard_rows(_read_parquet(file, "leaderboard"), str(file))
    repo = str(source)
    if not REPO_RE.match(repo):
        raise HarnessError(f"--from {repo!r}: no such folder, and not a Hub dataset repo ORG/NAME")
    if is_offline():
        raise HarnessError(OFFLINE_MESSAGE.replace("use --to-folder DIR to write the files locally",
                                                   "read a local folder instead"))
    from .. import hub

    # one quick probe first: the Hub client retries an unreachable endpoint for ~20 s
    problem = hub.probe_endpoint(hub_endpoint())
    if problem is not None:
        raise HarnessError(f"cannot reach {hub_endpoint()} to download {LEADERBOARD_FILE} of {repo} "
                           f"({_scrub(problem)}); check the network or HF_ENDPOINT, or read a local folder instead")
    with tempfile.TemporaryDirectory(prefix="harness-show-") as tmp:
        file = _hub_call(f"downloading {LEADERBOARD_FILE} of {repo}", _download_or_missing_repo,
                         {"endpoint": hub_endpoint(), "token": hub_token()}, repo, LEADERBOARD_FILE, None, tmp,
                         published="", access="read")
        if file is None:
            raise HarnessError(f"dataset repo {repo} has no {LEADERBOARD_FILE}: nothing was published there")
        name = f"{LEADERBOARD_FILE} of dataset repo {repo}"
        return hub_table.check_rows(hub_table.table_to_rows(_read_parquet(file, "leaderboard", name)), name)


def _leaderboard_rows(table, where: str) -> list[dict[str, Any]]:
    """The rows of a leaderboard Parquet table; another table (a run's shard, the per-image file)
    is named, not shown as a leaderboard of whatever columns it has."""
    missing = [c for c in hub_table.IDENTITY if c not in table.column_names]
    if missing:
        raise HarnessError(f"{where} is not a gaze-harness leaderboard (no {', '.join(missing[:4])}"
                           f"{', ...' if len(missing) > 4 else ''} column)")
    return hub_table.check_rows(hub_table.table_to_rows(table), where)


def render_published(source: str | Path, fmt: str = "github", primary: str | None = None,
                     width: int | None = None, normalise: bool = False, dataset: str | None = None,
                     task: str | None = None) -> str:
    """The table of a published leaderboard, rendered exactly like ``harness leaderboard show``
    (``dataset``, ``task``: only those rows, as ``show`` filters run folders)."""
    from .table import filtered, render_rows

    rows = load_published(source)
    if not rows:
        raise HarnessError(f"{source}: the published leaderboard is empty")
    rows = filtered(rows, lambda r: r, dataset, task, str(source))
    if not rows:
        raise HarnessError("no finished runs to show")
    return render_rows(rows, fmt=fmt, primary=primary, width=width, normalise=normalise)
