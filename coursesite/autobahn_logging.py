"""Autobahn's debug-log arguments, formatted only if a debug line is written.

Autobahn, Daphne's websocket layer, builds the arguments of its debug log
lines whether or not debug logging is on: a pretty-printed dump of ~40
settings for every new connection, and coloured type names for every frame
sent. Under a burst of a thousand readers that was about a tenth of the event
loop's time (docs/benchmark-notes.md). Here the helpers it calls return a
placeholder that does the formatting when, and only if, a log line asks for it.
Every call site passes them as log keyword arguments, which is what this
relies on; `install` checks the helpers are there and leaves autobahn alone
if a new version has moved them.
"""
from __future__ import annotations

import functools
import pprint

from autobahn import util
from autobahn.twisted import websocket as twisted_websocket
from autobahn.websocket import protocol as websocket_protocol


class FormattedWhenUsed:
    __slots__ = ("render",)

    def __init__(self, render) -> None:
        self.render = render

    def __str__(self) -> str:
        return str(self.render())

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    __repr__ = __str__


def _when_used(format_function):
    def deferred(*args, **kwargs) -> FormattedWhenUsed:
        return FormattedWhenUsed(functools.partial(format_function, *args, **kwargs))

    return deferred


# (module, name the module calls, the real function)
HELPERS = [
    (websocket_protocol, "pformat", pprint.pformat),
    (websocket_protocol, "hltype", util.hltype),
    (websocket_protocol, "hlval", util.hlval),
    (twisted_websocket, "hltype", util.hltype),
    (twisted_websocket, "hlval", util.hlval),
]


def install() -> bool:
    """Swap the helpers for deferred ones; False (and nothing changed) if any is missing."""
    if not all(getattr(module, name, None) is real for module, name, real in HELPERS):
        return False
    for module, name, real in HELPERS:
        setattr(module, name, _when_used(real))
    return True
