"""Text that users give (study and parameter names, metrics) and text that we print.

Names must be storable (valid Unicode: a lone surrogate cannot be encoded for SQLite or a
terminal), and anything printed to a terminal has its control characters escaped, so a study
named ``"\\x1b[2J"`` shows as text instead of clearing the screen.
"""

from __future__ import annotations

import unicodedata

__all__ = ["check_text", "printable"]


def check_text(value: str, argument: str) -> str:
    """`value` if it is valid Unicode text; ValueError naming `argument` otherwise."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{argument} must be valid Unicode text, got {value!r} ({exc.reason} at {exc.start})"
        ) from None
    return value


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: object, keep_newlines: bool = False) -> str:
    """`text` with control, format and unpaired-surrogate characters escaped (``\\x1b``);
    newlines and tabs too (unless `keep_newlines`), so one value stays on one line of a table."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(
        ch
        if (ch.isprintable() and unicodedata.category(ch) != "Cs") or (keep_newlines and ch == "\n")
        else _escape(ch)
        for ch in s
    )
