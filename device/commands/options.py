"""argparse pieces the commands share: types whose bounds are checked where the option is parsed (so the error names
it), and a help formatter that shows defaults."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse names the option in its error)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """`--help` shows each option's default, as ArgumentDefaultsHelpFormatter does, but only where there is one
    to show: not for required options, flags (False) or unset ones (None), and not twice where the help text
    already says it. A default people cannot see is one they cannot reason about (or reproduce a run with)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (action.required or action.default in (None, False, "", []) or action.default is argparse.SUPPRESS
                or "default" in text or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"
