"""`EmotionEdgeError`: the one base of every error meant for a user.

A command prints such an error as one line and exits with status 2; anything else is a bug and keeps its
traceback. Each subclass also keeps the built-in base it always had (`ContractError` is still a `ValueError`,
`SourceError` a `RuntimeError`), so code that catches those goes on working.
"""

from __future__ import annotations


class EmotionEdgeError(Exception):
    """A failure the user can act on (a bad config, a missing model, an unreachable broker): the message says how."""


class UsageError(EmotionEdgeError, ValueError):
    """A command's arguments cannot work, whatever the files and network say."""
