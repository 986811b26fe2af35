"""The object store from Python: failures a put must report, not hang on."""

from __future__ import annotations

import os

import pytest

import frayhq
from frayhq._objects import CHUNK_SIZE, STREAM


def test_a_put_whose_chunks_the_stream_refuses_fails_with_the_reason():
    # Its own cluster: the object stream's limit is lowered below a chunk's
    # size, so every chunk's PubAck is an error (nats-py's publish_async
    # would never settle on one, and the put would hang).
    with frayhq.connect("local", workers=1) as c:

        async def shrink() -> None:
            info = await c.js.stream_info(STREAM)
            info.config.max_msg_size = 1024
            await c.js.update_stream(info.config)

        c._run(shrink())  # noqa: SLF001
        with pytest.raises(frayhq.FrayError, match="refused a chunk.*(size|exceeds)") as ei:
            c.put(os.urandom(3 * CHUNK_SIZE))
        assert "maximum" in str(ei.value).lower(), ei.value
        # A small value needs no chunk over the limit: the store still works.
        ref = c.put(b"x" * 100)
        assert c.get(ref) == b"x" * 100
