"""Autobahn's log arguments are formatted only when a log line is written
(coursesite/autobahn_logging.py), and render exactly as before when one is."""
import pprint

from autobahn import util
from autobahn.websocket import protocol as websocket_protocol


def test_autobahn_log_helpers_are_deferred_and_render_as_before():
    import coursesite.asgi  # noqa: F401  (installs the deferred helpers)

    assert websocket_protocol.pformat is not pprint.pformat
    assert websocket_protocol.hltype is not util.hltype
    settings = [("openHandshakeTimeout", 5, "WebSocketServerFactory")]
    assert f"{websocket_protocol.pformat(settings)}" == pprint.pformat(settings)
    assert f"{websocket_protocol.hlval(42)}" == util.hlval(42)
    assert str(websocket_protocol.hltype(test_autobahn_log_helpers_are_deferred_and_render_as_before)) == util.hltype(
        test_autobahn_log_helpers_are_deferred_and_render_as_before)
