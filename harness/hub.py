"""Reaching the Hugging Face Hub: one quick probe before a client that retries.

``huggingface_hub`` retries a failed connection for ~20 s (printing a line per retry) before it
gives up, so every command that talks to the Hub first asks the endpoint once with a short
timeout: the Hugging Face model loader (``plugins/huggingface/loader.py``) and ``harness
leaderboard show --from ORG/NAME``. Unreachable, the command fails at once with one line.

Light to import: httpx is imported when a probe runs.
"""

from __future__ import annotations

#: seconds the probe waits for the endpoint to answer
PROBE_TIMEOUT_S = 3.0


def probe_endpoint(endpoint: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None if the Hub endpoint answers within ``timeout`` seconds, else why not (one line)."""
    import httpx

    try:
        httpx.head(endpoint, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no answer'}"
    return None
