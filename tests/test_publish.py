"""`harness leaderboard publish` and `show --from`: the REAL huggingface_hub client against a fake Hub.

The Hub cannot be reached here, so the test replaces only the bottom of the HTTP stack: huggingface_hub
2.4 talks through ``httpx2`` (a fork of httpx that respx does not patch), so ``httpx2.HTTPTransport``
hands every request to a respx router, which records it and answers like the Hub does (repo info,
repo creation, YAML validation, preupload, the LFS batch API and S3-style PUT, NDJSON commits,
``resolve`` downloads). Everything above the transport -- auth headers, offline checks, redirects,
error mapping, LFS hashing, the commit payload -- is the real client. hf_xet (Rust, its own HTTP
stack) is switched off so large files take the legacy LFS path, which goes through HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from harness.cli import main
from harness.leaderboard import publish as pub
from harness.leaderboard.hub_table import LEADERBOARD_FILE, PER_IMAGE_FILE
from harness.results import load_runs

try:
    from tests.site_helpers import sample_results, write_run
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    from site_helpers import sample_results, write_run

ENDPOINT = "https://hub.test"
LFS_HOST = "https://lfs.test"
TOKEN = "hf_testTOKENdoNotLeak0123456789"
REPO = "gaze-org/board"


class FakeHub:
    """Just enough of the Hub's HTTP API for create_repo / repo_info / create_commit / hf_hub_download,
    with real state: commits are applied, files can be downloaded back at any commit."""

    def __init__(self, router, token: str):
        import httpx

        self.httpx = httpx
        self.token = token
        self.repos: dict[tuple[str, str], dict] = {}
        self.lfs: dict[str, bytes] = {}
        self.fail: dict[str, int] = {}  # step name -> HTTP status to answer instead
        self.before_commit = None  # callable run when the commit arrives (to simulate a concurrent publish)
        self.commits: list[dict] = []
        self.unreachable = False  # True: every connection is refused
        e = re.escape(ENDPOINT)
        repo = r"(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)"
        kind = r"(?P<kind>datasets|spaces|models)"
        router.route(method="GET", url__regex=rf"^{e}/api/{kind}/{repo}(/revision/[^/?]+)?(\?.*)?$").mock(side_effect=self.info)
        router.route(method="POST", url__regex=rf"^{e}/api/repos/create$").mock(side_effect=self.create)
        router.route(method="POST", url__regex=rf"^{e}/api/validate-yaml$").mock(side_effect=self.validate_yaml)
        router.route(method="POST", url__regex=rf"^{e}/api/{kind}/{repo}/preupload/(?P<rev>[^/?]+)(\?.*)?$").mock(side_effect=self.preupload)
        router.route(method="POST", url__regex=rf"^{e}/(?P<prefix>datasets/|spaces/)?{repo}\.git/info/lfs/objects/batch$").mock(side_effect=self.lfs_batch)
        router.route(method="PUT", url__regex=rf"^{re.escape(LFS_HOST)}/upload/(?P<oid>[0-9a-f]{{64}})$").mock(side_effect=self.lfs_put)
        router.route(method="POST", url__regex=rf"^{e}/api/{kind}/{repo}/commit/(?P<rev>[^/?]+)(\?.*)?$").mock(side_effect=self.commit)
        router.route(method__in=["GET", "HEAD"], url__regex=rf"^{e}/(?P<prefix>datasets/|spaces/)?{repo}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$").mock(side_effect=self.resolve)

    # -- helpers --
    def _json(self, status, body, headers=None):
        return self.httpx.Response(status, json=body, headers=headers or {})

    def _auth(self, request):
        if request.headers.get("authorization") != f"Bearer {self.token}":
            msg = "Invalid credentials in Authorization header"  # what the Hub answers to a bad token
            return self._json(401, {"error": msg}, {"X-Error-Message": msg})
        return None

    def _failing(self, step):
        if step in self.fail:
            return self._json(self.fail[step], {"error": f"injected failure in {step}"})
        return None

    def _repo(self, kind, repo):
        return self.repos.get((kind.rstrip("s"), repo))

    def add_repo(self, rtype: str, repo: str, files: dict[str, bytes] | None = None, private: bool = False) -> str:
        sha = hashlib.sha1(f"{rtype}/{repo}/init".encode()).hexdigest()
        snapshot = {".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n", **(files or {})}
        self.repos[(rtype, repo)] = {"sha": sha, "private": private, "history": {sha: snapshot}, "sdk": None}
        return sha

    def files(self, rtype: str, repo: str) -> dict[str, bytes]:
        r = self.repos[(rtype, repo)]
        return r["history"][r["sha"]]

    def bump(self, rtype: str, repo: str) -> None:
        """Someone else commits to the repo."""
        r = self.repos[(rtype, repo)]
        new = hashlib.sha1((r["sha"] + "other").encode()).hexdigest()
        r["history"][new] = {**r["history"][r["sha"]], "other.txt": b"x"}
        r["sha"] = new

    # -- endpoints --
    def info(self, request, kind, repo):
        if (resp := self._auth(request) or self._failing("info")):
            return resp
        r = self._repo(kind, repo)
        if r is None:
            return self._json(404, {"error": "Repository not found"},
                              {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
        return self._json(200, {"id": repo, "sha": r["sha"], "private": r["private"],
                                "siblings": [{"rfilename": f} for f in sorted(r["history"][r["sha"]])]})

    def create(self, request):
        if (resp := self._auth(request) or self._failing("create")):
            return resp
        body = json.loads(request.content)
        repo = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
        rtype = body.get("type", "model")
        prefix = {"dataset": "datasets/", "space": "spaces/"}.get(rtype, "")
        if (rtype, repo) in self.repos:
            return self._json(409, {"error": "You already created this repo", "url": f"{ENDPOINT}/{prefix}{repo}"})
        self.add_repo(rtype, repo, private=body.get("visibility") == "private")
        self.repos[(rtype, repo)]["sdk"] = body.get("sdk")
        return self._json(200, {"url": f"{ENDPOINT}/{prefix}{repo}", "name": repo})

    def validate_yaml(self, request):
        if (resp := self._auth(request)):
            return resp
        content = json.loads(request.content)["content"]
        m = re.match(r"^---\n(.*?)\n---\n", content, re.S)
        try:
            yaml.safe_load(m.group(1)) if m else None
        except yaml.YAMLError as exc:
            return self._json(400, {"errors": [{"message": str(exc)}]})
        return self._json(200, {"errors": [], "warnings": []})

    def preupload(self, request, kind, repo, rev):
        if (resp := self._auth(request) or self._failing("preupload")):
            return resp
        if self._repo(kind, repo) is None:
            return self._json(404, {"error": "Repository not found"},
                              {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
        files = json.loads(request.content)["files"]
        return self._json(200, {"files": [
            {"path": f["path"], "uploadMode": "lfs" if f["path"].endswith((".parquet", ".png")) else "regular",
             "shouldIgnore": False, "oid": None} for f in files]})

    def lfs_batch(self, request, prefix, repo):
        if (resp := self._auth(request) or self._failing("lfs_batch")):
            return resp
        body = json.loads(request.content)
        assert body["operation"] == "upload"
        return self._json(200, {"transfer": "basic", "objects": [
            {"oid": o["oid"], "size": o["size"], "authenticated": True,
             "actions": {"upload": {"href": f"{LFS_HOST}/upload/{o['oid']}", "expires_in": 3600}}}
            for o in body["objects"]]})

    def lfs_put(self, request, oid):
        data = request.content
        if hashlib.sha256(data).hexdigest() != oid:
            return self.httpx.Response(400, text="checksum mismatch")
        self.lfs[oid] = data
        return self.httpx.Response(200)

    def commit(self, request, kind, repo, rev):
        if (resp := self._auth(request)):
            return resp
        lines = [json.loads(x) for x in request.content.decode().splitlines() if x.strip()]
        self.commits.append({"repo": repo, "kind": kind, "lines": lines, "headers": dict(request.headers)})
        if self.before_commit is not None:
            self.before_commit()
        if (resp := self._failing("commit")):
            return resp
        r = self._repo(kind, repo)
        if r is None:
            return self._json(404, {"error": "Repository not found"},
                              {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
        header = lines[0]["value"]
        if header.get("parentCommit") and header["parentCommit"] != r["sha"]:
            return self._json(412, {"error": "A commit has happened since. Please refresh and try again."})
        snapshot = dict(r["history"][r["sha"]])
        for op in lines[1:]:
            v = op["value"]
            if op["key"] == "file":
                snapshot[v["path"]] = base64.b64decode(v["content"])
            elif op["key"] == "lfsFile":
                if v["oid"] not in self.lfs:
                    return self._json(422, {"error": f"LFS object {v['oid']} was not uploaded"})
                snapshot[v["path"]] = self.lfs[v["oid"]]
            elif op["key"] == "deletedFile":
                snapshot.pop(v["path"], None)
        new = hashlib.sha1(json.dumps(lines, sort_keys=True).encode() + r["sha"].encode()).hexdigest()
        r["history"][new] = snapshot
        r["sha"] = new
        return self._json(200, {"commitUrl": f"{ENDPOINT}/{kind}/{repo}/commit/{new}", "commitOid": new,
                                "success": True, "pullRequestUrl": None})

    def resolve(self, request, prefix, repo, rev, path):
        if (resp := self._auth(request) or self._failing("resolve")):
            return resp
        rtype = {"datasets/": "dataset", "spaces/": "space"}.get(prefix or "", "model")
        r = self.repos.get((rtype, repo))
        if r is None:
            return self._json(404, {"error": "Repository not found"},
                              {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
        sha = r["sha"] if rev == "main" else rev
        if sha not in r["history"]:
            return self._json(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
        data = r["history"][sha].get(path)
        if data is None:
            return self._json(404, {"error": "Entry not found"},
                              {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"})
        headers = {"X-Repo-Commit": sha, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                   "Content-Length": str(len(data)), "Content-Type": "application/octet-stream"}
        if request.method == "HEAD":
            return self.httpx.Response(200, headers=headers)
        return self.httpx.Response(200, headers=headers, content=data)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The fake Hub behind the real client; HF_ENDPOINT/HF_TOKEN set, HF_HOME isolated."""
    import httpx
    import httpx2
    import respx
    from huggingface_hub import constants

    router = respx.Router(assert_all_called=False, assert_all_mocked=True)
    fake = FakeHub(router, TOKEN)

    def handle_request(self, request):
        if fake.unreachable:
            raise httpx2.ConnectError("[Errno 111] Connection refused", request=request)
        body = request.read()
        sent = httpx.Request(request.method, str(request.url), headers=list(request.headers.multi_items()), content=body)
        answer = router.handler(sent)  # AllMockedAssertionError for anything the fake Hub does not know
        return httpx2.Response(answer.status_code, headers=list(answer.headers.multi_items()), content=answer.content,
                               request=request)

    monkeypatch.setattr(httpx2.HTTPTransport, "handle_request", handle_request)

    def probe(endpoint, timeout=3.0):  # harness.hub's quick reachability check (plain httpx)
        return "ConnectError: [Errno 111] Connection refused" if fake.unreachable else None

    monkeypatch.setattr("harness.hub.probe_endpoint", probe)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    fake.router = router
    return fake


def calls(hub) -> list[tuple[str, str]]:
    return [(c.request.method, str(c.request.url).split("?")[0]) for c in hub.router.calls]


def publish_cli(*args: str):
    return CliRunner().invoke(main, ["leaderboard", "publish", *args])


def read_rows(data: bytes) -> dict[str, dict]:
    return {r["run_id"]: r for r in pq.read_table(io.BytesIO(data)).to_pylist()}


def test_one_commit_with_the_whole_tree(hub, tmp_path):
    results = tmp_path / "runs"
    runs = sample_results(results)
    r = publish_cli("--results", str(results), "--repo", REPO)
    assert r.exit_code == 0, r.output
    seen = calls(hub)
    ds = f"{ENDPOINT}/api/datasets/{REPO}"
    assert seen[:3] == [("GET", ds), ("POST", f"{ENDPOINT}/api/repos/create"), ("GET", ds)]
    assert [m for m, u in seen].count("POST") == 1 + 1 + 1 + 1 + 1  # create, validate-yaml, preupload, lfs batch, commit
    commit_calls = [u for m, u in seen if u.startswith(f"{ds}/commit/")]
    assert commit_calls == [f"{ds}/commit/main"] and seen[-1] == ("POST", f"{ds}/commit/main")
    assert sorted(u for m, u in seen if m == "PUT") == sorted(f"{LFS_HOST}/upload/{hashlib.sha256(d).hexdigest()}"
                                                              for p, d in hub.files("dataset", REPO).items() if p.endswith(".parquet"))
    # the repo was created as a dataset repo, public
    create = json.loads(next(c.request.content for c in hub.router.calls if str(c.request.url).endswith("/api/repos/create")))
    assert create == {"name": "board", "organization": "gaze-org", "type": "dataset", "visibility": "public"}
    # auth on every Hub request; never sent to the storage host
    for c in hub.router.calls:
        if str(c.request.url).startswith(ENDPOINT):
            assert c.request.headers["authorization"] == f"Bearer {TOKEN}"
        else:
            assert "authorization" not in c.request.headers
    # the commit payload: NDJSON header + README inline + both Parquet files as LFS pointers
    (commit,) = hub.commits
    assert commit["headers"]["content-type"] == "application/x-ndjson"
    header, *ops = commit["lines"]
    assert header["key"] == "header" and header["value"]["summary"].startswith(f"Publish {len(runs)} run(s)")
    assert header["value"]["parentCommit"] == hashlib.sha1(f"dataset/{REPO}/init".encode()).hexdigest()  # the new repo's head
    by_path = {op["value"]["path"]: op for op in ops}
    assert sorted(by_path) == ["README.md", LEADERBOARD_FILE, PER_IMAGE_FILE]
    assert by_path["README.md"]["key"] == "file" and by_path["README.md"]["value"]["encoding"] == "base64"
    files = hub.files("dataset", REPO)
    for path in (LEADERBOARD_FILE, PER_IMAGE_FILE):
        assert by_path[path]["key"] == "lfsFile"
        assert by_path[path]["value"] == {"path": path, "algo": "sha256", "oid": hashlib.sha256(files[path]).hexdigest(),
                                          "size": len(files[path])}
    # what landed
    rows = read_rows(files[LEADERBOARD_FILE])
    assert sorted(rows) == sorted(p.name for p in runs.values())
    lite1 = rows[runs["lite1"].name]
    assert lite1["nss"] == 1.6 and lite1["task:top1"] == 0.77 and lite1["weights_sha256"] == "ab" * 32
    assert json.loads(lite1["packages"]) == {"numpy": "2.3.0", "torch": "2.13.0"} and lite1["latest"] is True
    per_image = pq.read_table(io.BytesIO(files[PER_IMAGE_FILE])).to_pandas()
    assert len(per_image) == 4 * len(runs) and set(per_image["run_id"]) == set(rows)
    card = files["README.md"].decode()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["configs"][0] == {"config_name": "leaderboard", "data_files": [{"split": "train", "path": LEADERBOARD_FILE}],
                                  "default": True}
    assert meta["configs"][1]["config_name"] == "per_image"
    assert meta["license"] == "mit"  # every run is on OSIE (MIT)
    assert "| efficientnet-lite1" in card and "&lt;script&gt;alert(1)&lt;/script&gt;" in card and "<script>" not in card


def test_commit_names_the_head_it_merged_with(hub, tmp_path):
    sha = hub.add_repo("dataset", REPO)
    write_run(tmp_path / "runs", model="m", metrics={"nss": 1.0})
    assert publish_cli("--results", str(tmp_path / "runs"), "--repo", REPO).exit_code == 0
    assert hub.commits[0]["lines"][0]["value"]["parentCommit"] == sha
    assert ("POST", f"{ENDPOINT}/api/repos/create") not in calls(hub)


def test_publishing_merges_dedups_and_marks_latest(hub, tmp_path):
    first = tmp_path / "first"
    old = write_run(first, model="lite", metrics={"nss": 0.5}, seed=1, finished_at="2025-01-01T00:00:00+00:00")
    same = write_run(first, model="uniform", kind="baseline", metrics={"nss": 0.0})
    assert publish_cli("--results", str(first), "--repo", REPO).exit_code == 0
    before = read_rows(hub.files("dataset", REPO)[LEADERBOARD_FILE])
    second = tmp_path / "second"
    new = write_run(second, model="lite", metrics={"nss": 0.9}, seed=2, finished_at="2025-06-01T00:00:00+00:00")
    again = write_run(second, model="uniform", kind="baseline", metrics={"nss": 0.0})  # the same run, published twice
    other = write_run(second, model="lite", attention="rollout", metrics={"nss": 0.7})
    assert again.name == same.name
    r = publish_cli("--results", str(second), "--repo", REPO)
    assert r.exit_code == 0, r.output
    files = hub.files("dataset", REPO)
    rows = read_rows(files[LEADERBOARD_FILE])
    assert sorted(rows) == sorted([old.name, same.name, new.name, other.name])  # earlier rows stay, one row per run
    assert rows[old.name]["latest"] is False and rows[new.name]["latest"] is True  # newer run of the same settings
    assert rows[other.name]["latest"] is True and rows[same.name]["latest"] is True
    assert rows[old.name]["published_at"] == before[old.name]["published_at"]
    per_image = pq.read_table(io.BytesIO(files[PER_IMAGE_FILE])).to_pandas()
    assert per_image.groupby("run_id").size().to_dict() == {k: 4 for k in rows}  # no duplicated stimuli
    # the second publish downloaded both files at the head it then named as parent
    heads = [c for c in calls(hub) if "/resolve/" in c[1]]
    assert {u.rsplit("/", 2)[-2] + "/" + u.rsplit("/", 1)[-1] for m, u in heads} >= {"data/leaderboard.parquet", "data/per_image.parquet"}
    assert len(hub.commits) == 2


def test_server_error_on_commit_publishes_nothing(hub, tmp_path):
    sha = hub.add_repo("dataset", REPO, files={"README.md": b"old card"})
    results = tmp_path / "runs"
    write_run(results, model="m", metrics={"nss": 1.0})
    snapshot = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    hub.fail["commit"] = 500
    r = publish_cli("--results", str(results), "--repo", REPO)
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [r.output.strip()]  # one line
    assert r.output.startswith(f"Error: the Hub answered 500 while committing to dataset repo {REPO}")
    assert "nothing was published" in r.output
    assert calls(hub)[-1] == ("POST", f"{ENDPOINT}/api/datasets/{REPO}/commit/main")  # nothing attempted after it
    assert len(hub.commits) == 1
    assert hub.repos[("dataset", REPO)]["sha"] == sha and hub.files("dataset", REPO)["README.md"] == b"old card"
    assert {p: p.read_bytes() for p in results.rglob("*") if p.is_file()} == snapshot  # no local "published" marker
    assert not list(Path.cwd().glob("*.parquet"))


def test_bad_token_is_an_authentication_error(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_wrongTOKEN987654321")
    write_run(tmp_path / "runs", model="m", metrics={"nss": 1.0})
    r = publish_cli("--results", str(tmp_path / "runs"), "--repo", REPO)
    assert r.exit_code == 1
    assert r.output.strip() == (f"Error: authentication failed while reading dataset repo {REPO} (HTTP 401: Invalid "
                                "credentials in Authorization header): set HF_TOKEN to a token with write access to "
                                "the repo; nothing was published")
    assert "hf_wrongTOKEN987654321" not in r.output
    assert len(calls(hub)) == 1 and hub.commits == []


def test_concurrent_publish_is_refused_not_overwritten(hub, tmp_path):
    hub.add_repo("dataset", REPO)
    write_run(tmp_path / "runs", model="m", metrics={"nss": 1.0})
    hub.before_commit = lambda: hub.bump("dataset", REPO)
    r = publish_cli("--results", str(tmp_path / "runs"), "--repo", REPO)
    assert r.exit_code == 1 and "the repo changed on the Hub" in r.output and "run publish again" in r.output
    assert LEADERBOARD_FILE not in hub.files("dataset", REPO)


def test_private_flag_never_publishes_into_a_public_repo(hub, tmp_path):
    hub.add_repo("dataset", REPO, private=False)
    write_run(tmp_path / "runs", model="m", metrics={"nss": 1.0})
    r = publish_cli("--results", str(tmp_path / "runs"), "--repo", REPO, "--private")
    assert r.exit_code == 1 and "is public and --private was given" in r.output
    assert hub.commits == []


def test_private_repo_is_created_private(hub, tmp_path):
    write_run(tmp_path / "runs", model="m", metrics={"nss": 1.0})
    assert publish_cli("--results", str(tmp_path / "runs"), "--repo", REPO, "--private").exit_code == 0
    assert hub.repos[("dataset", REPO)]["private"] is True


def test_offline_mode_makes_no_request(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_run(tmp_path / "runs", model="m", metrics={"nss": 1.0})
    r = publish_cli("--results", str(tmp_path / "runs"), "--repo", REPO)
    assert r.exit_code == 1
    assert r.output.strip() == f"Error: {pub.OFFLINE_MESSAGE}"
    assert calls(hub) == []
    r = CliRunner().invoke(main, ["leaderboard", "show", "--from", REPO])
    assert r.exit_code == 1 and "HF_HUB_OFFLINE" in r.output and calls(hub) == []


def test_token_never_printed_or_written(hub, tmp_path):
    results = tmp_path / "runs"
    sample_results(results)
    folder = tmp_path / "folder"
    outputs = [publish_cli("--results", str(results), "--repo", REPO, "--space", "gaze-org/board-page"),
               publish_cli("--results", str(results), "--repo", REPO, "--to-folder", str(folder)),
               CliRunner().invoke(main, ["leaderboard", "show", "--from", REPO])]
    for r in outputs:
        assert r.exit_code == 0, r.output
        assert TOKEN not in r.output
    hub.fail["commit"] = 500
    r = publish_cli("--results", str(results), "--repo", REPO)
    assert r.exit_code == 1 and TOKEN not in r.output
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    for (rtype, repo), state in hub.repos.items():
        for snapshot in state["history"].values():
            assert all(TOKEN.encode() not in data for data in snapshot.values())


def test_space_gets_the_static_page(hub, tmp_path):
    results = tmp_path / "runs"
    sample_results(results)
    r = publish_cli("--results", str(results), "--repo", REPO, "--space", "gaze-org/board-page")
    assert r.exit_code == 0, r.output
    creates = [json.loads(c.request.content) for c in hub.router.calls if str(c.request.url).endswith("/api/repos/create")]
    assert creates[-1] == {"name": "board-page", "organization": "gaze-org", "type": "space", "sdk": "static",
                           "visibility": "public"}
    files = hub.files("space", "gaze-org/board-page")
    assert {"index.html", "app.js", "style.css", "favicon.svg", "README.md"} <= set(files)
    meta = yaml.safe_load(files["README.md"].decode().split("---\n")[1])
    assert meta["sdk"] == "static" and meta["app_file"] == "index.html"
    assert b"efficientnet-lite1" in files["index.html"] and b"<script>alert" not in files["index.html"]
    assert len(hub.commits) == 2 and hub.commits[0]["kind"] == "datasets" and hub.commits[1]["kind"] == "spaces"


def test_space_page_and_card_hold_no_local_path_and_missing_data_is_said(hub, tmp_path, monkeypatch):
    """The Space page is built like `leaderboard build`: a dataset it cannot open (here: no data,
    empty cache) costs the human panels and gives one warning line on stderr; neither the page nor
    the card shows a local path or an error message (a local hf: folder shows its last part)."""
    import numpy as np

    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    run = write_run(tmp_path / "runs", model=f"hf:{tmp_path}/models/my-vit", metrics={"nss": 1.0},
                    maps={"1001": np.ones((60, 80))})
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["command"] = [f"{tmp_path}/.venv/bin/harness", "eval", "--output", f"{tmp_path}/runs"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    r = publish_cli("--results", str(tmp_path / "runs"), "--repo", REPO, "--space", "gaze-org/board-page")
    assert r.exit_code == 0, r.output
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: osie: the page shows no human fixation density")
    page = hub.files("space", "gaze-org/board-page")
    card = hub.files("dataset", REPO)["README.md"].decode()
    assert "hf:\u2026/my-vit" in card
    for name, data in [*page.items(), ("README.md (dataset)", card.encode())]:
        if name.endswith((".html", ".md", ".js", ".css")) or name.startswith("README"):
            text = data.decode()
            for needle in (str(tmp_path), "Traceback", "Errno", "githubusercontent"):
                assert needle not in text, (name, needle)
    assert "the osie data was not available where this page was built" in page["index.html"].decode()


def test_space_failure_after_data_landed_says_so(hub, tmp_path):
    write_run(tmp_path / "runs", model="m", metrics={"nss": 1.0})
    hub.fail["create"] = 503
    hub.add_repo("dataset", REPO)
    r = publish_cli("--results", str(tmp_path / "runs"), "--repo", REPO, "--space", "gaze-org/page")
    assert r.exit_code == 1
    line = r.output.strip().splitlines()[-1]
    assert line.startswith("Error: the Hub answered 503 while creating Space gaze-org/page")
    assert line.endswith(f"the leaderboard data was published to {REPO}, only the Space is not updated")
    assert LEADERBOARD_FILE in hub.files("dataset", REPO)


def test_to_folder_is_the_committed_tree_and_loads_with_datasets(hub, tmp_path):
    import datasets

    results = tmp_path / "runs"
    runs = sample_results(results)
    folder = tmp_path / "folder"
    r = publish_cli("--results", str(results), "--repo", REPO, "--to-folder", str(folder))
    assert r.exit_code == 0, r.output
    assert calls(hub) == []  # no network at all
    assert publish_cli("--results", str(results), "--repo", REPO).exit_code == 0
    committed = hub.files("dataset", REPO)
    local = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert sorted(local) == sorted(p for p in committed if p != ".gitattributes")
    strip = lambda rows: {k: {c: v for c, v in row.items() if c != "published_at"} for k, row in rows.items()}  # noqa: E731
    assert strip(read_rows(local[LEADERBOARD_FILE])) == strip(read_rows(committed[LEADERBOARD_FILE]))
    assert local["README.md"] == committed["README.md"]

    board = datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "ds-cache"))
    assert sorted(board["run_id"]) == sorted(p.name for p in runs.values())
    row = board.filter(lambda x: x["model"] == "efficientnet-lite1")[0]
    assert row["nss"] == 1.6 and row["task:top1"] == 0.77 and row["kind"] == "model" and row["latest"] is True
    assert board.filter(lambda x: x["model"] == "human-ceiling")[0]["kind"] == "ceiling"
    per_image = datasets.load_dataset(str(folder), "per_image", split="train", cache_dir=str(tmp_path / "ds-cache"))
    assert per_image.num_rows == 4 * len(runs)
    assert set(per_image.column_names) >= {"run_id", "stimulus_id", "status", "error", "nss", "task:top1"}


def test_real_eval_runs_publish_and_read_back(tmp_path, monkeypatch):
    """`harness eval` output (real OSIE stimuli) -> publish --to-folder -> load_dataset / show --from."""
    import datasets

    monkeypatch.delenv("COLUMNS", raising=False)  # the whole table, as redirected to a file

    results = tmp_path / "runs"
    r = CliRunner().invoke(main, ["eval", "--model", "center-bias", "--dataset", "osie", "--limit", "3", "--output",
                                  str(results), "--no-references", "--no-show"])
    assert r.exit_code == 0, r.output
    folder = tmp_path / "pub"
    assert publish_cli("--results", str(results), "--to-folder", str(folder)).exit_code == 0
    board = datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "ds-cache"))
    assert board.num_rows == 1 and board[0]["model"] == "center-bias" and board[0]["n_images"] == 3
    # the code that computed the row is a column of its own, not only inside the manifest's JSON
    from harness.evaluation.record import source_fingerprint

    manifest = json.loads(next(results.rglob("manifest.json")).read_text())
    assert board[0]["harness_source"] == manifest["harness_source"] == source_fingerprint()
    summary = json.loads(next(results.rglob("summary.json")).read_text())
    for name, value in summary["metrics"].items():
        assert board[0][name] == pytest.approx(value)
    per_image = datasets.load_dataset(str(folder), "per_image", split="train", cache_dir=str(tmp_path / "ds-cache"))
    assert per_image["stimulus_id"] == ["1001", "1002", "1003"]
    shown = CliRunner().invoke(main, ["leaderboard", "show", "--from", str(folder)])
    assert shown.exit_code == 0, shown.output
    assert "center-bias" in shown.output
    # one renderer: the local table, the published board read back and the Hub README's table agree
    local = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(results)])
    assert local.exit_code == 0 and local.output == shown.output
    assert local.output.strip() in (folder / "README.md").read_text()


def test_published_rows_hold_no_local_path(tmp_path):
    """The command line names local paths in a run's own manifest; what is published shortens
    them as the page does."""
    import pyarrow.parquet as pq

    results = tmp_path / "runs"
    run = write_run(results, model="my-net", metrics={"nss": 1.0})
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["command"] = ["harness", "eval", "--output", str(results), "--data-dir", str(tmp_path / "data")]
    (run / "manifest.json").write_text(json.dumps(manifest))
    folder = tmp_path / "pub"
    assert publish_cli("--results", str(results), "--to-folder", str(folder)).exit_code == 0
    texts = []
    for name in ("data/leaderboard.parquet", "data/per_image.parquet"):
        for column in pq.read_table(folder / name).to_pylist():
            texts += [v for v in column.values() if isinstance(v, str)]
    assert texts and not [t for t in texts if str(tmp_path) in t]
    row = pq.read_table(folder / "data" / "leaderboard.parquet").to_pylist()[0]
    assert json.loads(row["manifest"])["command"] == ["harness", "eval", "--output", "\u2026/runs", "--data-dir",
                                                       "\u2026/data"]


def test_load_published_from_folder_and_hub(hub, tmp_path):
    results = tmp_path / "runs"
    runs = sample_results(results)
    folder = tmp_path / "folder"
    pub.publish_to_folder(results, folder, repo=REPO)
    assert calls(hub) == []
    local = pub.load_published(folder)
    assert sorted(r["run_id"] for r in local) == sorted(p.name for p in runs.values())
    assert pub.load_published(folder / LEADERBOARD_FILE) == local
    with pytest.raises(pub.HarnessError, match="not found"):
        pub.load_published(REPO)
    assert calls(hub) == [("HEAD", f"{ENDPOINT}/datasets/{REPO}/resolve/main/{LEADERBOARD_FILE}")]
    assert publish_cli("--results", str(results), "--repo", REPO).exit_code == 0
    remote = pub.load_published(REPO)
    strip = lambda rows: sorted(({k: v for k, v in r.items() if k != "published_at"} for r in rows), key=lambda r: r["run_id"])  # noqa: E731
    assert strip(remote) == strip(local)
    shown = CliRunner().invoke(main, ["leaderboard", "show", "--from", REPO])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert any("efficientnet-lite1" in l and "1.6000" in l for l in lines)
    assert any("human-ceiling" in l and "2.5000" in l for l in lines)
    # the superseded run is not in the table: the renderer shows the latest of each setting
    assert sum("efficientnet-lite0" in l for l in lines) == 1


def test_load_published_errors_are_one_line(hub, tmp_path):
    hub.add_repo("dataset", REPO)
    with pytest.raises(pub.HarnessError) as err:
        pub.load_published(REPO)
    assert str(err.value) == f"dataset repo {REPO} has no {LEADERBOARD_FILE}: nothing was published there"
    with pytest.raises(pub.HarnessError, match="no such folder, and not a Hub dataset repo"):
        pub.load_published("not a repo")
    (tmp_path / "empty").mkdir()
    with pytest.raises(pub.HarnessError, match="no data/leaderboard.parquet here"):
        pub.load_published(tmp_path / "empty")
    hub.add_repo("dataset", "gaze-org/other")
    hub.fail["resolve"] = 403
    with pytest.raises(pub.HarnessError) as err:
        pub.load_published("gaze-org/other")
    assert str(err.value) == (f"authentication failed while downloading {LEADERBOARD_FILE} of gaze-org/other (HTTP 403: "
                              "injected failure in resolve): set HF_TOKEN to a token that can read the repo")


def test_server_error_while_downloading_is_reported_after_the_clients_retries(hub, tmp_path, monkeypatch):
    import huggingface_hub.utils._http as hf_http

    sleeps = []
    monkeypatch.setattr(hf_http.time, "sleep", sleeps.append)  # the client's backoff, without the wait
    hub.add_repo("dataset", REPO)
    hub.fail["resolve"] = 500
    with pytest.raises(pub.HarnessError, match=rf"^the Hub answered 500 while downloading {LEADERBOARD_FILE} of {REPO} "
                                               r"\(injected failure in resolve\); try again later$"):
        pub.load_published(REPO)
    assert len([c for c in calls(hub) if c[0] == "HEAD"]) > len(sleeps) >= 1  # retried, then reported
    write_run(tmp_path / "runs", model="m", metrics={"nss": 1.0})
    r = publish_cli("--results", str(tmp_path / "runs"), "--repo", REPO)
    assert r.exit_code == 1 and r.output.strip().startswith("Error: the Hub answered 500 while downloading")
    assert r.output.strip().endswith("nothing was published") and hub.commits == []


def test_argument_errors(tmp_path):
    write_run(tmp_path / "runs", model="m", metrics={"nss": 1.0})
    r = publish_cli("--results", str(tmp_path / "runs"))
    assert r.exit_code == 1 and r.output.strip() == ("Error: --repo ORG/NAME is required (or --to-folder DIR to write "
                                                      "the files locally)")
    r = publish_cli("--results", str(tmp_path / "runs"), "--repo", "no-slash")
    assert r.exit_code == 1 and r.output.strip() == "Error: --repo 'no-slash' is not a Hub repo id of the form ORG/NAME"
    r = publish_cli("--results", str(tmp_path / "runs"), "--to-folder", str(tmp_path / "f"), "--space", "a/b")
    assert r.exit_code == 1 and "--space cannot be combined with --to-folder" in r.output


def test_per_image_columns_keep_their_type_across_publishes(tmp_path):
    """A run whose images all failed has only missing values; a later run has numbers. The merged
    per-image file must type those columns as numbers, not as text."""
    folder = tmp_path / "pub"
    write_run(tmp_path / "a", model="broken", task="classification", metrics={"nss": 1.0}, task_metrics={"top1": 0.5},
              n_images=2, n_failed=2)
    pub.publish_to_folder(tmp_path / "a", folder)
    write_run(tmp_path / "b", model="fine", task="classification", metrics={"nss": 1.0}, task_metrics={"top1": 0.5})
    pub.publish_to_folder(tmp_path / "b", folder)
    table = pq.read_table(folder / PER_IMAGE_FILE)
    assert str(table.schema.field("nss").type) == "double" and str(table.schema.field("task:top1").type) == "double"
    frame = table.to_pandas()
    assert frame.groupby("model")["nss"].count().to_dict() == {"broken": 0, "fine": 4}
    assert sorted(frame[frame.model == "broken"]["status"]) == ["failed", "failed"]


def test_missing_write_permission_on_commit(hub, tmp_path):
    hub.add_repo("dataset", REPO)
    write_run(tmp_path / "runs", model="m", metrics={"nss": 1.0})
    hub.fail["commit"] = 403
    r = publish_cli("--results", str(tmp_path / "runs"), "--repo", REPO)
    assert r.exit_code == 1
    assert r.output.strip() == (f"Error: authentication failed while committing to dataset repo {REPO} (HTTP 403: "
                                "injected failure in commit): set HF_TOKEN to a token with write access to the repo; "
                                "nothing was published")


def test_unreachable_hub_is_one_line(hub, tmp_path):
    hub.unreachable = True
    write_run(tmp_path / "runs", model="m", metrics={"nss": 1.0})
    r = publish_cli("--results", str(tmp_path / "runs"), "--repo", REPO)
    assert r.exit_code == 1
    assert r.output.strip() == (f"Error: cannot reach {ENDPOINT} while reading dataset repo {REPO}: ConnectError: "
                                "[Errno 111] Connection refused; nothing was published")


def card_meta(card: str) -> dict:
    return yaml.safe_load(card.split("---\n")[1])


def test_card_license_comes_from_the_datasets(tmp_path):
    """One licence the Hub knows -> that id; datasets with different terms -> `other`, each named in
    the card's text."""
    write_run(tmp_path / "osie", model="m", metrics={"nss": 1.0})
    pub.publish_to_folder(tmp_path / "osie", tmp_path / "one")
    card = (tmp_path / "one" / "README.md").read_text()
    assert card_meta(card)["license"] == "mit"
    assert "- `osie`: MIT" in card

    write_run(tmp_path / "osie", model="m", dataset="salicon", metrics={"nss": 1.0})
    pub.publish_to_folder(tmp_path / "osie", tmp_path / "two")
    card = (tmp_path / "two" / "README.md").read_text()
    assert card_meta(card)["license"] == "other"
    assert "- `osie`: MIT" in card
    assert "- `salicon`: not stated in the SALICON API repository (see salicon.net); images: MS COCO terms" in card

    # a dataset whose plugin is not installed here: its licence is unknown, and said so
    assert pub.card_license({"elsewhere": None}) == "unknown"
    assert pub.card_license({"osie": "MIT", "elsewhere": None}) == "other"
    assert pub.card_license({"a": "Apache-2.0", "b": "apache-2.0"}) == "apache-2.0"


def test_show_from_unreachable_hub_fails_fast(tmp_path):
    """Nothing listens at the endpoint: one probe, one line, no retries (the Hub client alone
    retries for ~20 s and prints a line per retry)."""
    import os
    import subprocess
    import sys
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf-home"))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "harness", "leaderboard", "show", "--from", REPO],
                          capture_output=True, text=True, env=env, timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode == 1
    assert elapsed < 5, f"took {elapsed:.1f} s"
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"Error: cannot reach http://127.0.0.1:9 to download {LEADERBOARD_FILE} of {REPO} (")


def test_bad_leaderboard_inputs_and_hub_repo_ids_are_one_line(tmp_path):
    """Each of these was a traceback, or worse, output: a run's shard shown as a 'leaderboard' of its
    columns, --dataset ignored with --from, a project's README replaced by the card."""
    runs = tmp_path / "runs"
    write_run(runs, model="m", metrics={"nss": 1.0})
    folder = tmp_path / "pub"
    pub.publish_to_folder(runs, folder)
    shard = next(runs.rglob("shards/*.parquet"))
    for source in (shard, folder / PER_IMAGE_FILE):
        r = CliRunner().invoke(main, ["leaderboard", "show", "--from", str(source)])
        assert r.exit_code == 1 and r.output.strip().startswith(f"Error: {source} is not a gaze-harness leaderboard (no ")
    r = CliRunner().invoke(main, ["leaderboard", "show", "--from", str(folder), "--dataset", "elsewhere"])
    assert r.exit_code == 1 and r.output.strip() == f"Error: no finished run of dataset 'elsewhere' in {folder}; there are: osie"
    assert CliRunner().invoke(main, ["leaderboard", "show", "--from", str(folder), "--dataset", "osie"]).exit_code == 0
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("# my project")
    r = publish_cli("--results", str(runs), "--to-folder", str(project))
    assert r.exit_code == 1 and "is not empty and holds no data/leaderboard.parquet" in r.output
    assert (project / "README.md").read_text() == "# my project"
    assert publish_cli("--results", str(runs), "--to-folder", str(folder)).exit_code == 0  # a leaderboard: merged
    for repo in ("gaze-org/a--b", "gaze-org/" + "x" * 120):
        r = publish_cli("--results", str(runs), "--repo", repo)
        assert r.exit_code == 1 and r.output.strip().startswith(f"Error: --repo {repo!r} is not a valid Hub repo id: ")


def test_explained_ig_is_against_the_ceiling_blurred_alike_and_follows_a_later_publish(tmp_path):
    """The explained IG took the latest calibrated ceiling of any blur (120% for the 1-degree
    ceiling beside a 2-degree one), and a model published before its ceiling never got one."""
    from harness.leaderboard import hub_table

    def calibrated(root, model, kind, ig, blur, finished):
        return write_run(root, model=model, kind=kind, metrics={"nss": 1.0, "ig": ig}, scoring="calibrated",
                         finished_at=finished, metric_params={"sigma_deg": blur, "sigma_px": 24.0 * blur},
                         attention="leave-one-subject-out" if kind == "ceiling" else "grad-cam")

    runs = tmp_path / "runs"
    calibrated(runs, "human-ceiling", "ceiling", 2.0, 1.0, "2025-03-01T12:00:00+00:00")
    calibrated(runs, "human-ceiling", "ceiling", 1.6, 2.0, "2025-03-02T12:00:00+00:00")
    calibrated(runs, "net", "model", 0.1, 1.0, "2025-03-01T12:00:00+00:00")
    rows = hub_table.rows_from_runs(load_runs(runs))
    explained = {(r["model"], json.loads(r["settings"])["metric_params"]["sigma_deg"]): r.get("ig_explained")
                 for r in rows}
    assert explained == {("human-ceiling", 1.0): 100.0, ("human-ceiling", 2.0): 100.0, ("net", 1.0): 5.0}
    # the model alone first, its ceiling in a later publish
    model_only, ceiling_only, folder = tmp_path / "m", tmp_path / "c", tmp_path / "pub"
    calibrated(model_only, "net", "model", 0.1, 1.0, "2025-03-01T12:00:00+00:00")
    calibrated(ceiling_only, "human-ceiling", "ceiling", 2.0, 1.0, "2025-03-01T12:00:00+00:00")
    pub.publish_to_folder(model_only, folder)
    assert [r.get("ig_explained") for r in pub.load_published(folder)] == [None]
    pub.publish_to_folder(ceiling_only, folder)
    assert {r["model"]: r.get("ig_explained") for r in pub.load_published(folder)} == {"human-ceiling": 100.0,
                                                                                        "net": 5.0}


def test_per_image_rows_say_their_scoring_and_metric_profile(tmp_path):
    """A raw and a calibrated run of one model had per-image rows alike but for run_id (a reader
    had to join the leaderboard to tell them apart)."""
    runs, folder = tmp_path / "runs", tmp_path / "pub"
    write_run(runs, model="net", metrics={"nss": 1.0})
    write_run(runs, model="net", metrics={"nss": 0.9, "ig": 0.1}, scoring="calibrated", profile="pysaliency")
    pub.publish_to_folder(runs, folder)
    per_image = pq.read_table(folder / PER_IMAGE_FILE).to_pandas()
    assert list(per_image.columns[:8]) == ["run_id", "model", "attention", "dataset", "task", "kind",
                                           "metric_profile", "scoring"]
    pairs = per_image.groupby(["scoring", "metric_profile"]).size().to_dict()
    assert pairs == {("calibrated", "pysaliency"): 4, ("raw", "mit"): 4}
    card = (folder / "README.md").read_text()
    assert "`kind`, `metric_profile`, `scoring`, `stimulus_id`" in card and "`ig_explained`" in card
    # rows an older version published without the two columns get them from their run's row at the next publish
    table = pq.read_table(folder / PER_IMAGE_FILE)
    pq.write_table(table.drop(["metric_profile", "scoring"]), folder / PER_IMAGE_FILE)
    more = tmp_path / "more"
    write_run(more, model="other", metrics={"nss": 0.5})
    pub.publish_to_folder(more, folder)
    per_image = pq.read_table(folder / PER_IMAGE_FILE).to_pandas()
    pairs = per_image.groupby(["model", "scoring", "metric_profile"]).size().to_dict()
    assert pairs == {("net", "calibrated", "pysaliency"): 4, ("net", "raw", "mit"): 4, ("other", "raw", "mit"): 4}


def test_a_damaged_file_on_the_hub_is_named_by_its_place_there(hub, tmp_path):
    """It was named by the temporary copy the client downloaded (/tmp/harness-publish-…/…)."""
    sha = hub.add_repo("dataset", REPO, files={LEADERBOARD_FILE: b"PAR1 not parquet PAR1"})
    write_run(tmp_path / "runs", model="m", metrics={"nss": 1.0})
    r = publish_cli("--results", str(tmp_path / "runs"), "--repo", REPO)
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
    assert r.output.startswith(f"Error: {LEADERBOARD_FILE} of dataset repo {REPO} (commit {sha}): unreadable "
                               "leaderboard Parquet file (")
    assert "harness-publish-" not in r.output and "repair or remove it on the Hub" in r.output
    assert len(hub.commits) == 0
    r = CliRunner().invoke(main, ["leaderboard", "show", "--from", REPO])
    assert r.exit_code == 1 and r.output.startswith(f"Error: {LEADERBOARD_FILE} of dataset repo {REPO}: unreadable")
    assert "harness-show-" not in r.output


def test_two_model_folders_with_the_same_last_part_stay_two_published_models(tmp_path):
    """A local ``hf:`` folder is published as ``hf:…/<last part>`` (no local path leaves the
    machine); two folders that end alike (``run1/checkpoint-500``, ``run2/checkpoint-500``) must
    still be two models there: each its own latest row, not one hiding the other as superseded.
    The same folder run again still supersedes its earlier run."""
    import pyarrow.parquet as pq

    results = tmp_path / "runs"
    a, b = "hf:/home/me/run1/checkpoint-500", "hf:/home/me/run2/checkpoint-500"
    write_run(results, model=a, metrics={"nss": 1.0}, finished_at="2025-03-01T12:00:00+00:00")
    write_run(results, model=b, metrics={"nss": 2.0}, finished_at="2025-03-02T12:00:00+00:00")
    write_run(results, model=a, metrics={"nss": 1.5}, seed=1, finished_at="2025-03-03T12:00:00+00:00")
    folder = tmp_path / "pub"
    assert publish_cli("--results", str(results), "--to-folder", str(folder)).exit_code == 0
    rows = pq.read_table(folder / "data" / "leaderboard.parquet").to_pylist()
    latest = {r["model"]: r["nss"] for r in rows if r["latest"]}
    assert sorted(latest.values()) == [1.5, 2.0], rows
    assert all(m.startswith("hf:\u2026/checkpoint-500") and "/home/me" not in m for m in latest)
    per_image = pq.read_table(folder / "data" / "per_image.parquet").to_pylist()
    assert {r["model"] for r in per_image} == set(latest)
    # the run ids, which name the model, publish its public name too (the settings hash kept)
    assert {r["run_id"] for r in per_image} == {r["run_id"] for r in rows}
    texts = [v for r in rows + per_image for v in r.values() if isinstance(v, str)]
    assert not [t for t in texts if "home-me" in t or "/home/me" in t]
    assert all(r["run_id"].startswith("hf-checkpoint-500-") for r in rows)
    # rows an earlier version published under the local id (the path's slug) are the same runs:
    # publishing again replaces them, it does not add a second latest row beside each
    local_ids = sorted(r.run_id for r in load_runs(results))
    board = pq.read_table(folder / "data" / "leaderboard.parquet")
    pq.write_table(board.set_column(board.schema.get_field_index("run_id"), "run_id",
                                    pa.array(local_ids)),
                   folder / "data" / "leaderboard.parquet")
    assert {r["run_id"] for r in pq.read_table(folder / "data" / "leaderboard.parquet").to_pylist()} == set(local_ids)
    assert publish_cli("--results", str(results), "--to-folder", str(folder)).exit_code == 0
    again = pq.read_table(folder / "data" / "leaderboard.parquet").to_pylist()
    assert sorted(r["run_id"] for r in again) == sorted(r["run_id"] for r in rows) and len(again) == 3
    # the page built from the run folders tells the two apart by the same names
    from harness.leaderboard.site import page_rows
    from harness.leaderboard import hub_table

    shown = {r["model"] for r in page_rows(hub_table.mark_latest(hub_table.rows_from_runs(load_runs(results))))}
    assert shown == set(latest)


def test_show_from_a_published_board_equals_show_from_its_runs_with_both_scorings(tmp_path, monkeypatch):
    """Published rows carry every column: the raw table read back from the Parquet file showed the
    calibrated-only ll and ig_explained as empty columns that show --results does not have (found by QA)."""
    from site_helpers import write_run

    monkeypatch.delenv("COLUMNS", raising=False)
    results = tmp_path / "runs"
    write_run(results, model="center-bias", kind="baseline", attention="prior", metrics={"nss": 1.0, "ig": 0.0})
    write_run(results, model="net-a", metrics={"nss": 1.4, "ig": 0.2})
    write_run(results, model="net-a", metrics={"nss": 1.5, "ig": 0.3, "ll": -0.5}, scoring="calibrated")
    folder = tmp_path / "pub"
    assert publish_cli("--results", str(results), "--to-folder", str(folder)).exit_code == 0
    for args in ([], ["--wide"]):
        local = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(results), *args])
        shown = CliRunner().invoke(main, ["leaderboard", "show", "--from", str(folder), *args])
        assert local.exit_code == shown.exit_code == 0, shown.output
        assert "ll" in shown.output and shown.output == local.output


def _replace_route(hub, old, new) -> None:
    for route in hub.router.routes:
        if route.side_effect == old:
            route.side_effect = new


@pytest.mark.parametrize("answer", [403, 500, "refused"])
def test_a_failed_file_upload_is_one_line_and_publishes_nothing(hub, tmp_path, answer):
    """The storage host (S3) the Hub hands LFS uploads to refuses a PUT or cannot be reached:
    huggingface_hub wraps that in a bare RuntimeError, which ended in a traceback."""
    import httpx2

    sha = hub.add_repo("dataset", REPO)

    def lfs_put(request, oid):
        if answer == "refused":
            raise httpx2.ConnectError("[Errno 111] Connection refused")
        return hub.httpx.Response(answer, text="<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")

    _replace_route(hub, hub.lfs_put, lfs_put)
    write_run(tmp_path / "runs", model="m", metrics={"nss": 1.0})
    r = publish_cli("--results", str(tmp_path / "runs"), "--repo", REPO)
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit)
    line = r.output.strip()
    assert line.splitlines() == [line]
    why = f"HTTP {answer}" if answer != "refused" else "ConnectError: [Errno 111] Connection refused"
    assert re.fullmatch(rf"Error: uploading data/(leaderboard|per_image)\.parquet to the Hub's file storage failed "
                        rf"while committing to dataset repo {REPO} \({re.escape(why)}\); try again later; nothing "
                        r"was published", line), line
    assert hub.commits == [] and hub.repos[("dataset", REPO)]["sha"] == sha


def test_a_commit_whose_answer_never_comes_may_have_landed(hub, tmp_path):
    """The Hub applies the commit but its answer times out: "nothing was published" would be false."""
    import httpx2

    hub.add_repo("dataset", REPO)
    commit = hub.commit

    def late(request, kind, repo, rev):
        commit(request, kind, repo, rev)
        raise httpx2.ReadTimeout("The read operation timed out")

    _replace_route(hub, commit, late)
    write_run(tmp_path / "runs", model="m", metrics={"nss": 1.0})
    r = publish_cli("--results", str(tmp_path / "runs"), "--repo", REPO)
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit)
    assert r.output.strip() == (f"Error: no answer from {ENDPOINT} while committing to dataset repo {REPO} (ReadTimeout: "
                                "The read operation timed out): the commit may or may not have landed; check "
                                f"{ENDPOINT}/datasets/{REPO} before publishing again")
    assert "nothing was published" not in r.output
    assert LEADERBOARD_FILE in hub.files("dataset", REPO)  # it did land


def test_card_table_escapes_metric_headers_and_link_syntax(tmp_path):
    """The card's cells were escaped but its headers were not: a metric named like an HTML tag went
    into the README raw, a `|` in one broke the table, and a model named as a Markdown link stayed one."""
    runs = tmp_path / "runs"
    write_run(runs, model="[link](javascript:alert(4))", metrics={"nss": 1.3})
    write_run(runs, model="plain", metrics={"nss": 1.0, "<img src=y onerror=alert(5)>": 0.3, "m|x": 0.2},
              task_metrics={"<svg onload=alert(6)>": 0.5})
    pub.publish_to_folder(runs, tmp_path / "pub")
    card = (tmp_path / "pub" / "README.md").read_text()
    table = [l for l in card.splitlines() if l.startswith("|")]
    assert len(table) == 4  # header, rule, two rows
    assert len({len(re.split(r"(?<!\\)\|", l)) for l in table}) == 1  # as many columns in every line
    assert not re.findall(r"<(img|svg)", card)
    assert "&lt;img src=y onerror=alert(5)&gt;" in table[0] and "task:&lt;svg onload=alert(6)&gt;" in table[0]
    assert r"m\|x" in table[0] and r"\[link\](javascript:alert(4))" in card


def test_published_provenance_comes_from_the_hashed_settings(tmp_path):
    """The manifest is not hashed, settings.json is: a row's fingerprint and weights hash came from the
    manifest, so an edited one was published while the row's own settings said otherwise."""
    run = write_run(tmp_path / "runs", model="m", metrics={"nss": 1.0}, dataset_fingerprint="aa" * 32)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest.update(dataset_fingerprint="ff" * 32, seed=9, settings_sha256="0" * 64,
                    model_provenance={"model_id": "org/other", "weights_sha256": "ee" * 32})
    (run / "manifest.json").write_text(json.dumps(manifest))
    (row,) = pub.hub_table.rows_from_runs(load_runs(tmp_path / "runs", check=False))
    assert row["dataset_fingerprint"] == "aa" * 32 and row["seed"] == 0
    assert row["weights_sha256"] == "ab" * 32 and row["model_id"] == "org/m"
    assert row["settings_sha256"] == pub.hub_table.settings_hash(json.loads(row["settings"]))


def test_show_from_a_hub_that_refuses_the_token_says_so(hub, tmp_path):
    """A 401 with HF_TOKEN set said "(if it is private, set HF_TOKEN)": the token was set, and refused."""
    hub.add_repo("dataset", REPO)
    hub.fail["resolve"] = 401
    r = CliRunner().invoke(main, ["leaderboard", "show", "--from", REPO])
    assert r.exit_code == 1
    assert r.output.strip() == (f"Error: the Hub refused the token in HF_TOKEN (HTTP 401) while downloading "
                                f"{LEADERBOARD_FILE} of {REPO}: set HF_TOKEN to a valid token that can read the repo")
    assert TOKEN not in r.output


def test_space_card_links_the_data_on_the_endpoint_it_was_published_to(hub, tmp_path):
    write_run(tmp_path / "runs", model="m", metrics={"nss": 1.0})
    r = publish_cli("--results", str(tmp_path / "runs"), "--repo", REPO, "--space", "gaze-org/page")
    assert r.exit_code == 0, r.output
    card = hub.files("space", "gaze-org/page")["README.md"].decode()
    assert f"The data: {ENDPOINT}/datasets/{REPO}\n" in card and "huggingface.co" not in card


@pytest.mark.parametrize("column, value, why", [
    ("metric_directions", "not json", "not JSON, or nested too deeply"),
    ("metric_directions", "[1,2]", "not a JSON object"),
    ("metric_directions", '{"nss": 5}', "a direction that is not 'higher' or 'lower'"),
    ("nonfinite", "not json", "not JSON, or nested too deeply"),
    ("settings", "[" * 100000, "not JSON, or nested too deeply"),
    ("settings", '{"metric_params": 5}', "its metric_params is not an object"),
    ("run_id", None, "None, not a run id"),
    ("n_images", "lots", "'lots', not a count"),
])
def test_a_published_column_that_is_not_the_schemas_is_one_line(tmp_path, column, value, why):
    """Hostile JSON columns of a published leaderboard gave JSONDecodeError, TypeError, RecursionError
    and AttributeError tracebacks in `show --from` and in a publish merging into the folder (found by
    the security QA): the file, column and row are named, and no row of it is used."""
    runs, other = tmp_path / "runs", tmp_path / "other"
    write_run(runs, model="m", metrics={"nss": 1.0})
    write_run(other, model="n", metrics={"nss": 2.0})
    folder = tmp_path / "pub"
    pub.publish_to_folder(runs, folder)
    path = folder / LEADERBOARD_FILE
    table = pq.read_table(path)
    values = pa.array([value] * table.num_rows)
    table = table.set_column(table.column_names.index(column), column, values)
    pq.write_table(table, path)
    before = path.read_bytes()
    expected = (f"Error: {path}: column {column} of row 1 is not what a gaze-harness leaderboard holds ({why}); "
                "repair or remove the file")
    for fmt in ("github", "plain", "csv"):
        r = CliRunner().invoke(main, ["leaderboard", "show", "--from", str(folder), "--format", fmt])
        assert r.exit_code == 1 and r.output.strip() == expected, r.output
    r = publish_cli("--results", str(other), "--to-folder", str(folder))
    assert r.exit_code == 1 and r.output.strip() == expected, r.output
    assert path.read_bytes() == before


def test_a_published_file_declaring_absurdly_many_rows_is_not_read(tmp_path, monkeypatch):
    """A small per-image file declaring 1e8 rows of one repeated value took gigabytes when read (the
    security QA's shard case, for published files): the footer's row count is checked first."""
    write_run(tmp_path / "runs", model="m", metrics={"nss": 1.0})
    write_run(tmp_path / "runs", model="n", metrics={"nss": 2.0})
    folder = tmp_path / "pub"
    pub.publish_to_folder(tmp_path / "runs", folder)
    monkeypatch.setitem(pub.MAX_PUBLISHED_ROWS, "leaderboard", 1)
    r = CliRunner().invoke(main, ["leaderboard", "show", "--from", str(folder)])
    assert r.exit_code == 1, r.output
    assert r.output.strip() == (f"Error: {folder / LEADERBOARD_FILE}: the leaderboard Parquet file declares 2 rows, "
                                "more than a leaderboard holds (1); not read")
    monkeypatch.setitem(pub.MAX_PUBLISHED_ROWS, "leaderboard", 2)
    monkeypatch.setitem(pub.MAX_PUBLISHED_ROWS, "per-image", 7)  # the two runs have 4 stimuli each
    r = publish_cli("--results", str(tmp_path / "runs"), "--to-folder", str(folder))
    assert r.exit_code == 1 and "the per-image Parquet file declares 8 rows" in r.output, r.output
