"""Errors a user can cause and fix. The CLI prints them as one line, never a traceback."""


class HarnessError(Exception):
    """A user-facing error: bad input, unknown name, missing data. Message is one line."""


class DataError(HarnessError):
    """A dataset file is missing, truncated or unreadable. The message names the file."""


class PluginError(HarnessError):
    """A plugin failed to load or registered something invalid. The message names the plugin."""
