"""Stimulus ids and the file names made from them.

A stimulus id is data (it comes from a dataset's files), so it is never used as a path. The rule
(:func:`validate_stimulus_id`, enforced once, when a dataset is converted): a non-empty ``str`` of
at most :data:`MAX_ID_LENGTH` characters, without control characters, line separators, lone
surrogates or backslashes, without leading or trailing whitespace, not starting with ``/`` or ``~``,
and whose ``/``-separated segments are neither empty, ``.`` nor ``..``. So ``cat/1001`` (category /
name) is allowed and ``../x``, ``a//b``, ``a/./b``, ``/tmp/x`` are not.

Files named after a stimulus use :func:`stimulus_filename`: one file-name component, a readable
lower-case slug plus the first 12 hex digits of the id's SHA-256, so distinct ids never share a
file even on case-insensitive file systems (``A`` / ``a``, ``a/b`` / ``a__b``). Other names made
from free text (run ids as site asset folders) use :func:`safe_component`, which keeps a text that
is already a safe name and adds a hash whenever it had to change or cut it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

__all__ = ["MAX_ID_LENGTH", "validate_stimulus_id", "stimulus_filename", "safe_component"]

#: longest stimulus id accepted (characters)
MAX_ID_LENGTH = 512
#: hex digits of SHA-256 appended to slugs
HASH_LENGTH = 12
#: longest readable part of a stimulus file name
SLUG_LENGTH = 60

_UNSAFE = re.compile(r"[^a-z0-9._-]+")
_SUFFIX = re.compile(r"[A-Za-z0-9._-]*")
_HASHED = re.compile(rf"-[0-9a-f]{{{HASH_LENGTH}}}$")


def _problem(sid: object) -> str | None:
    if not isinstance(sid, str):
        return f"not a string but {type(sid).__name__}"
    if not sid:
        return "empty"
    if len(sid) > MAX_ID_LENGTH:
        return f"longer than {MAX_ID_LENGTH} characters ({len(sid)})"
    for ch in sid:
        cat = unicodedata.category(ch)
        if cat == "Cc":
            return f"contains the control character {ch!r}"
        if cat in ("Zl", "Zp"):
            return f"contains the line separator {ch!r}"
        if cat == "Cs":
            return "contains a lone surrogate (not valid Unicode text)"
    if "\\" in sid:
        return "contains a backslash"
    if sid != sid.strip():
        return "has leading or trailing whitespace"
    if sid.startswith(("/", "~")):
        return f"starts with {sid[0]!r}"
    for segment in sid.split("/"):
        if segment in ("", ".", ".."):
            return f"has an empty, '.' or '..' path segment ({segment!r})"
    return None


def validate_stimulus_id(sid: object) -> str:
    """``sid`` unchanged if it follows the stimulus id rule (module docstring); otherwise
    ``ValueError`` with a short reason (no id in the message: callers name the record)."""
    problem = _problem(sid)
    if problem is not None:
        raise ValueError(problem)
    return sid  # type: ignore[return-value]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def _slug(text: str, max_len: int) -> str:
    slug = _UNSAFE.sub("-", text.lower())[:max_len]
    return slug.strip(".-")


def _check_suffix(suffix: str) -> str:
    if not isinstance(suffix, str) or not _SUFFIX.fullmatch(suffix) or suffix in (".", ".."):
        raise ValueError(f"file name suffix {suffix!r} may only hold ASCII letters, digits and ._-")
    return suffix


def stimulus_filename(sid: str, suffix: str = "") -> str:
    """One safe file-name component for stimulus ``sid``: ``<slug>-<sha256[:12]><suffix>``.

    The slug (ASCII letters, digits, ``._-``, lower-cased, ``/`` written as ``__``, at most
    :data:`SLUG_LENGTH` characters, never starting with ``.``) is only for people; the hash keeps
    distinct ids apart, whatever their case or length. ``ValueError`` for an invalid id or a
    suffix with other characters."""
    validate_stimulus_id(sid)
    _check_suffix(suffix)
    slug = _slug(sid.replace("/", "__"), SLUG_LENGTH) or "id"
    return f"{slug}-{_sha(sid)}{suffix}"


def safe_component(text: str, max_len: int = 80) -> str:
    """A single file-name component (ASCII letters, digits, ``._-``, lower case, no leading ``.``)
    for free ``text``, at most ``max_len`` characters.

    ``text`` is kept as it is when it already is such a name (and does not itself end like a hashed
    name, ``-`` + 12 hex digits); otherwise, also when it had to be lower-cased or cut, the name is
    a slug of it plus ``-`` and the first 12 hex digits of its SHA-256. So distinct texts never
    share a name, also on case-insensitive file systems."""
    if not isinstance(text, str):
        raise ValueError(f"not a string but {type(text).__name__}")
    if max_len < HASH_LENGTH + 9:
        raise ValueError(f"max_len {max_len} leaves no room for a readable name and the hash")
    if text and len(text) <= max_len and _slug(text, max_len) == text and not _HASHED.search(text):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_LENGTH]
    slug = _slug(text, max_len - HASH_LENGTH - 1) or "x"
    return f"{slug}-{digest}"
