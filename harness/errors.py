"""Errors a user can cause and fix. The CLI prints them as one line, never a traceback."""


class HarnessError(Exception):
    """A user-facing error: bad input, unknown name, missing data. Message is one line."""


class DataError(HarnessError):
    """A dataset file is missing, truncated or unreadable. The message names the file."""


class PluginError(HarnessError):
    """A plugin failed to load or registered something invalid. The message names the plugin."""


def interrupt_in(exc: BaseException | None) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt in ``exc``'s chain of causes, if any: an interrupt that arrives while
    compiled code (a numba kernel loading itself, a C extension) calls back into Python comes out
    wrapped in a ``SystemError``, which must stop the command, not count as a failed batch."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
