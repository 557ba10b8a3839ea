"""Leaderboard: tables from runs (``table``), the static site (``site``), Hub publishing (``publish``)."""
