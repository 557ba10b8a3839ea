"""Stimulus ids are data, never paths: the id rule, the file names made from ids, and safe names
for other free text (run ids as site asset folders)."""

from __future__ import annotations

import hashlib
import re

import pytest

from harness.ids import MAX_ID_LENGTH, safe_component, stimulus_filename, validate_stimulus_id

SAFE_NAME = re.compile(r"[a-z0-9_-][a-z0-9._-]*")


@pytest.mark.parametrize("sid", ["1001", "cat/1001", "Action/001", "TP/stop sign/000000123", "a.b", "...",
                                 "x" * MAX_ID_LENGTH, "café", "a b", "a..b/c.d"])
def test_valid_ids_are_returned_unchanged(sid):
    assert validate_stimulus_id(sid) is sid


@pytest.mark.parametrize("sid, reason", [
    ("../../x", "'..'"), ("../x", "'..'"), ("../../etc/passwd", "'..'"), ("a/../b", "'..'"), ("..", "'..'"),
    ("a//b", "empty"), ("a/./b", "'.'"), (".", "'.'"), ("a/", "empty"),
    ("/tmp/x", "starts with '/'"), ("/", "starts with '/'"), ("~/x", "starts with '~'"), ("~root", "starts with '~'"),
    ("a\\b", "backslash"), ("..\\x", "backslash"),
    ("a\x00b", "control character"), ("a\nb", "control character"), ("a\rb", "control character"),
    ("a\tb", "control character"), ("a\x7fb", "control character"), ("a\u2028b", "line separator"),
    ("a\ud800", "surrogate"),
    (" a", "whitespace"), ("a ", "whitespace"), ("a\u00a0", "whitespace"),
    ("", "empty"), ("x" * (MAX_ID_LENGTH + 1), "longer than 512"),
    (1001, "not a string"), (None, "not a string"), (b"1001", "not a string"),
])
def test_invalid_ids_raise_with_a_short_reason(sid, reason):
    with pytest.raises(ValueError) as exc:
        validate_stimulus_id(sid)
    msg = str(exc.value)
    assert reason in msg and "\n" not in msg and len(msg) < 100


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()[:12]


@pytest.mark.parametrize("sid", ["1001", "cat/1001", "A", "a", "a/b", "a__b", ".hidden", "...", "CON", "x" * 512,
                                 "TP/stop sign/0001", "café/Ünïcode"])
def test_stimulus_filename_is_one_safe_component_with_the_id_hash(sid):
    name = stimulus_filename(sid, ".npy")
    assert name.endswith(f"-{_digest(sid)}.npy")
    stem = name[: -len(".npy")]
    assert SAFE_NAME.fullmatch(stem) and "/" not in name and not name.startswith(".")
    assert len(stem) <= 60 + 1 + 12
    assert stimulus_filename(sid, ".npy") == name  # deterministic


def test_stimulus_filename_is_readable():
    assert stimulus_filename("1001", ".npy") == f"1001-{_digest('1001')}.npy"
    assert stimulus_filename("Cat/1001", ".npy") == f"cat__1001-{_digest('Cat/1001')}.npy"
    assert stimulus_filename("a b", "") == f"a-b-{_digest('a b')}"


@pytest.mark.parametrize("a, b", [("A", "a"), ("a/b", "a__b"), ("x" * 100 + "1", "x" * 100 + "2"),
                                  ("cat/1001", "cat_1001"), ("a b", "a-b"), ("1001", "1001.")])
def test_stimulus_filename_never_collides_even_ignoring_case(a, b):
    fa, fb = stimulus_filename(a, ".npy"), stimulus_filename(b, ".npy")
    assert fa.lower() != fb.lower()


def test_stimulus_filename_refuses_invalid_ids_and_suffixes():
    for bad in ("../../x", "/tmp/x", "a//b", ""):
        with pytest.raises(ValueError):
            stimulus_filename(bad, ".npy")
    for suffix in ("/x.npy", "../x", ".", "..", "a\\b", ".n py"):
        with pytest.raises(ValueError):
            stimulus_filename("1001", suffix)


@pytest.mark.parametrize("text", ["osie", "run__osie__free-viewing__grad-cam__0123abcd", "a.b-c_d", "x" * 80])
def test_safe_component_keeps_names_that_are_already_safe(text):
    assert safe_component(text) == text


@pytest.mark.parametrize("text", ["Model-A", "a b", "../../x", "/tmp/x", ".hidden", ".", "..", "", "x" * 81,
                                  "name-0123456789ab", "trailing.", "a/b", "café"])
def test_safe_component_adds_a_hash_when_it_changes_the_text(text):
    name = safe_component(text)
    assert SAFE_NAME.fullmatch(name) and len(name) <= 80
    assert name.endswith("-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12])
    assert safe_component(text, max_len=40).endswith(name[-13:]) and len(safe_component(text, max_len=40)) <= 40


def test_safe_component_never_collides():
    prefix = "efficientnet-lite0-with-a-very-long-fine-tuning-description__osie__free-viewing__grad-cam__"
    assert len(prefix) > 80
    pairs = [(prefix + "aaaa", prefix + "bbbb"), ("A", "a"), ("a/b", "a__b"), ("a/b", "a-b"), ("a b", "a-b"),
             ("Run", "run"), ("x!", "x-" + safe_component("x!")[-12:])]
    for a, b in pairs:
        assert safe_component(a).lower() != safe_component(b).lower(), (a, b)
    many = {safe_component(prefix + str(i)) for i in range(1000)}
    assert len(many) == 1000 and all(len(n) <= 80 for n in many)


def test_safe_component_refuses_a_max_len_without_room_for_the_hash():
    with pytest.raises(ValueError):
        safe_component("x", max_len=12)
