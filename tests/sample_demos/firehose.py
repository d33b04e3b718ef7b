"""Test demo: a loop run that sends megabytes for little work, to fill a reader that does not read.

A real demo sends some 65 bytes an event, so fifteen readers past a 4 MiB
bound would cost the server a million events; large events of one shared
string reach the same bytes in a few hundred.
"""
import asyncio

from demos.params import IntParam

slug = "test-firehose"
title = "Firehose (test)"
concept = "Many large events in a short time."
placement = "loop"
time_limit_s = 30.0
lanes = "chunk"
params = (
    IntParam("chunks", 100, 1, 2_000),
    IntParam("chunk_kib", 16, 1, 64),
    IntParam("gap_ms", 10, 0, 1_000),
)


async def run(params, emit):
    """Emit `chunks` events of `chunk_kib` KiB each, `gap_ms` apart."""
    padding = "x" * (params["chunk_kib"] * 1024)  # one string: the stored events share it
    for index in range(params["chunks"]):
        emit("metric", name="chunk", value=index, padding=padding)
        await asyncio.sleep(params["gap_ms"] / 1000)
    return {"text": f"Sent {params['chunks']} chunks of {params['chunk_kib']} KiB."}
