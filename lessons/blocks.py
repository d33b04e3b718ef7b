"""The fenced blocks a lesson may hold, how their bodies are read, and the author errors found in them.

Every fence whose info string starts with one of BLOCK_KINDS is a block; any
other fence is code. A header that looks like a block but is not one
(```` ```demo: slug ````, ```` ```Demo slug ````, ```` ```predicton ````) is a
near miss and an error, because keeping it as code would hide the mistake
from the author until a reader met a code listing where a demo should be.

Errors are collected, not raised one by one: the author sees every problem of
the lesson at once, each with the line of the lesson it is on.
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field

from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

DEMO_KINDS = ("demo", "demo-planned", "demo-steps")
BLOCK_KINDS = (*DEMO_KINDS, "prediction", "quiz")
# A block's own id: lower-case words joined by hyphens, short enough for a URL fragment and a database key.
BLOCK_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass
class BlockErrors:
    """Author errors of one lesson, as (line, message), in the order they were found."""

    errors: list[tuple[int, str]] = field(default_factory=list)

    def add(self, line: int, message: str) -> None:
        self.errors.append((line, message))

    def __bool__(self) -> bool:
        return bool(self.errors)


@dataclass(frozen=True)
class Field:
    """One `name: value` line of a block body (continued by indented lines)."""

    value: str
    line: int


@dataclass(frozen=True)
class Item:
    """One list line of a block body (`- [x] label :: why`), with its lesson line."""

    text: str
    line: int


@dataclass
class BlockBody:
    fields: dict[str, Field] = field(default_factory=dict)
    items: list[Item] = field(default_factory=list)


def read_body(body: str, *, first_line: int, errors: BlockErrors, takes_items: bool = False) -> BlockBody:
    """Read `name: value` lines (and, when `takes_items`, `- ...` list lines) of a block body.

    `first_line` is the lesson line of the body's first line. A line indented
    under a field or an item continues it; `#` at the start of a line makes it
    a comment. Malformed and repeated lines are reported, and reading goes on.
    """
    result = BlockBody()
    last: tuple[str, str | int] | None = None  # ("field", name) or ("item", index): what an indented line continues
    for offset, raw_line in enumerate(body.splitlines()):
        line_number = first_line + offset
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if raw_line[:1].isspace() and last is not None:
            if last[0] == "field":
                name = str(last[1])
                previous = result.fields[name]
                result.fields[name] = Field(f"{previous.value} {line}", previous.line)
            else:
                index = int(last[1])
                result.items[index] = Item(f"{result.items[index].text} {line}", result.items[index].line)
            continue
        if takes_items and line.startswith("- "):
            result.items.append(Item(line[2:].strip(), line_number))
            last = ("item", len(result.items) - 1)
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not name or " " in name:
            hint = " or a choice `- [ ] answer :: why`" if takes_items else ""
            errors.add(line_number, f"this line should read `name: value`{hint}, not {line!r}")
            last = None
            continue
        if name in result.fields:
            errors.add(line_number, f"`{name}` is given twice in this block (first at line {result.fields[name].line})")
            last = None
            continue
        result.fields[name] = Field(value.strip(), line_number)
        last = ("field", name)
    return result


def check_fields(body: BlockBody, *, kind: str, allowed: set[str], required: set[str], line: int,
                 errors: BlockErrors) -> None:
    """Report fields the block does not take and required ones it lacks."""
    for name, given in body.fields.items():
        if name not in allowed:
            close = difflib.get_close_matches(name, sorted(allowed), n=1, cutoff=0.7)
            hint = f"; did you mean `{close[0]}`?" if close else f" (it takes: {', '.join(sorted(allowed))})"
            errors.add(given.line, f"a {kind} block has no field `{name}`{hint}")
    for name in sorted(required - set(body.fields)):
        errors.add(line, f"this {kind} block needs `{name}: ...`")
    for name, given in body.fields.items():
        if name in allowed and not given.value:
            errors.add(given.line, f"`{name}:` is empty")


def parse_number(text: str) -> float | None:
    """A finite number written by an author ("300", "0.5", "1_000", "-2"), or None."""
    try:
        number = float(text.replace("_", "").strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_tolerance(text: str) -> dict[str, float] | None:
    """`25%` -> {"relative": 0.25}; `50` -> {"absolute": 50.0}; None when it is neither."""
    text = text.strip().removeprefix("±").removeprefix("+-").strip()
    if text.endswith("%"):
        number = parse_number(text[:-1])
        return {"relative": number / 100} if number is not None and number >= 0 else None
    number = parse_number(text)
    return {"absolute": number} if number is not None and number >= 0 else None


def parse_block_id(given: Field | None, *, default: str, errors: BlockErrors) -> str:
    """The block's id: the author's `id:` when it is well formed, else the default."""
    if given is None or not given.value:
        return default
    if not BLOCK_ID.match(given.value) or re.fullmatch(r"demo-\d+", given.value):
        errors.add(given.line, f"id {given.value!r} should be lower-case letters, digits and hyphens "
                               "(e.g. `ten-waits-total`), and not `demo-N`, which names the demos")
        return default
    return given.value


def near_miss(info: str) -> str | None:
    """What is wrong with a fence header that looks like a block but is not one; None when it is ordinary code."""
    words = info.split()
    if not words or words[0] in BLOCK_KINDS:
        return None
    parts = [part for part in re.split(r"[\s:=,]+", info.strip().lower()) if part]
    head = parts[0].strip("{}.`'\"") if parts else ""
    rest = " ".join(parts[1:])
    suggestion = f"```{head} {rest}".rstrip() if head in BLOCK_KINDS else ""
    if head in BLOCK_KINDS:
        return f"the fence header {info.strip()!r} looks like a {head} block; write {suggestion} (lower case, a space, no colon)"
    try:
        get_lexer_by_name(words[0])
        return None  # a language the highlighter knows: code
    except ClassNotFound:
        pass
    close = difflib.get_close_matches(head, BLOCK_KINDS, n=1, cutoff=0.75)
    if close:
        return (f"the fence header {info.strip()!r} looks like a misspelt {close[0]} block; write ```{close[0]}"
                f"{' ' + rest if rest else ''} (or ```text to show it as code)")
    return None
