"""uvicorn's sans-I/O WebSocket protocol, with a refusal of an oversized
frame that the client can read.

uvicorn answers a frame over ``ws_max_size`` (``COLLAB_MAX_FRAME_BYTES``)
with a close frame (1009, "frame with N bytes exceeds limit of M bytes") and
closes the TCP connection at once. The client is usually still sending that
frame: closing a socket with unread data makes the kernel reset the
connection, and the client loses the close frame and sees a bare 1006 (seen
with 21 MiB updates). Here the connection lingers instead: the rest of the
frame is read and discarded after the close frame, and the socket is closed when the client closes or after ``LINGER_SECONDS``.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

#: How long a refused client may take to finish sending and read our close frame.
LINGER_SECONDS = 10.0


class SyncProtocol(WebSocketsSansIOProtocol):
    _draining = False

    def data_received(self, data: bytes) -> None:
        if self._draining:
            return  # the rest of a refused frame: read, so the kernel never resets
        super().data_received(data)

    def handle_parser_exception(self) -> None:
        assert self.conn.close_sent is not None
        code = self.conn.close_sent.code
        reason = self.conn.close_sent.reason
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self._draining = True
        # As ``close_timer``: uvicorn then does not close the transport when
        # the endpoint returns (it did, one run in four, before the client
        # had finished sending: the reset lost our close frame).
        self.close_timer = asyncio.get_running_loop().call_later(
            LINGER_SECONDS, self.transport.close
        )
