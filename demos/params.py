"""Demo parameters: declared by each demo, validated here, for every caller.

The websocket, the lesson presets and the HTTP listing all go through
`validate_params`, so the browser's checks are only ever a courtesy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ParamError(ValueError):
    """Parameters a client or an author supplied do not fit the declaration."""


@dataclass(frozen=True)
class IntParam:
    name: str
    default: int
    min: int
    max: int
    label: str = ""
    help: str = ""
    type: str = field(default="int", init=False)

    def coerce(self, value: Any, *, from_text: bool) -> int:
        if from_text and isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ParamError(f"{self.name} must be a whole number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError(f"{self.name} must be a whole number, got {_describe(value)}")
        if not self.min <= value <= self.max:
            raise ParamError(f"{self.name} must be between {self.min} and {self.max}, got {value}")
        return value

    def describe(self) -> dict:
        return {"name": self.name, "type": "int", "min": self.min, "max": self.max, "default": self.default,
                "label": self.label or self.name, "help": self.help}


@dataclass(frozen=True)
class ChoiceParam:
    name: str
    default: str
    choices: tuple[str, ...]
    label: str = ""
    help: str = ""
    type: str = field(default="choice", init=False)

    def coerce(self, value: Any, *, from_text: bool) -> str:
        if from_text and isinstance(value, str):
            value = value.strip()
        if not isinstance(value, str) or value not in self.choices:
            raise ParamError(f"{self.name} must be one of {', '.join(self.choices)}; got {_describe(value)}")
        return value

    def describe(self) -> dict:
        return {"name": self.name, "type": "choice", "choices": list(self.choices), "default": self.default,
                "label": self.label or self.name, "help": self.help}


@dataclass(frozen=True)
class BoolParam:
    name: str
    default: bool
    label: str = ""
    help: str = ""
    type: str = field(default="bool", init=False)

    def coerce(self, value: Any, *, from_text: bool) -> bool:
        if from_text and isinstance(value, str) and value.strip().lower() in {"true", "false", "yes", "no", "on", "off"}:
            return value.strip().lower() in {"true", "yes", "on"}
        if not isinstance(value, bool):
            raise ParamError(f"{self.name} must be true or false, got {_describe(value)}")
        return value

    def describe(self) -> dict:
        return {"name": self.name, "type": "bool", "default": self.default, "label": self.label or self.name,
                "help": self.help}


@dataclass(frozen=True)
class TextParam:
    """Free text, such as a program's source: taken as sent, never trimmed (indentation matters)."""

    name: str
    default: str
    min_length: int
    max_length: int
    label: str = ""
    help: str = ""
    multiline: bool = True
    type: str = field(default="text", init=False)

    def coerce(self, value: Any, *, from_text: bool) -> str:
        if not isinstance(value, str):
            raise ParamError(f"{self.name} must be text, got {_describe(value)}")
        if not self.min_length <= len(value) <= self.max_length:
            raise ParamError(f"{self.name} must be {self.min_length} to {self.max_length:,} characters long, "
                             f"got {len(value):,}")
        if "\x00" in value:
            raise ParamError(f"{self.name} must not contain NUL characters")
        return value

    def describe(self) -> dict:
        return {"name": self.name, "type": "text", "min_length": self.min_length, "max_length": self.max_length,
                "multiline": self.multiline, "default": self.default, "label": self.label or self.name,
                "help": self.help}


Param = IntParam | ChoiceParam | BoolParam | TextParam


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def validate_params(demo, supplied: Any, *, from_text: bool = False) -> dict[str, Any]:
    """Every declared parameter filled in (defaults included), or ParamError naming the culprit.

    `from_text` accepts strings for numbers and booleans, as lesson presets are text.
    """
    if supplied is None:
        supplied = {}
    if not isinstance(supplied, dict):
        raise ParamError("params must be a JSON object")
    declared = {param.name: param for param in demo.params}
    unknown = [str(key) for key in supplied if key not in declared]
    if unknown:
        known = ", ".join(declared) or "none"
        raise ParamError(f"unknown parameter {_describe(unknown[0])} (this demo takes: {known})")
    values = {name: param.default for name, param in declared.items()}
    for name, value in supplied.items():
        values[name] = declared[name].coerce(value, from_text=from_text)
    check = getattr(demo, "check_params", None)
    if check is not None:
        check(values)  # cross-parameter rules, raising ParamError
    return values
