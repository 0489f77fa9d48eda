"""The one error tree of collab.

Every error a client can be told about derives from :class:`CollabError` and
carries its HTTP status, its WebSocket close code and a machine-readable
``code``. The HTTP layer turns any of them into
``{"error": {"code", "message"}}``; the WebSocket layer closes with
``close_code`` and the message as reason. Nothing else is shown to clients.

    CollabError                      (500, 1011)  something of ours broke
    ├── ConfigError                               bad setting at start (never sent)
    ├── BadRequest                   (400, 4400)  the request is malformed
    │   ├── InvalidJSON              (400)        body is not JSON / wrong shape
    │   └── ProtocolError            (400, 4400)  a y-protocol frame we cannot parse
    │       └── UnknownMessageType   (400, 4400)  message type not in the protocol
    ├── Unauthenticated              (401, 4401)  missing, unknown or expired token
    ├── Forbidden                    (403, 4403)  valid token, no right to do this
    ├── NotFound                     (404, 4404)  no such annotation / user / version
    │   └── NoTask                   (404)        tasks/next: nothing the caller may take
    ├── Conflict                     (409, 4409)  duplicate name, wrong state
    │   └── BadState                 (409)        a task instance is not in a state for that
    ├── PayloadTooLarge              (413, 1009)  body or frame over its size limit
    │   └── DocumentFull             (413, 4413)  the annotation's document reached its size cap
    ├── RateLimited                  (429, 1008)  over a connection, message or request rate
    ├── Unprocessable                (422, 4422)  well-formed but semantically invalid
    │   ├── BadUpdate                (422, 4422)  a CRDT update pycrdt cannot apply
    │   ├── InvalidTask              (422)        an element of a task batch (its index given)
    │   ├── LayoutError              (422)        a dataset's files do not describe a dataset
    │   ├── InvalidGraph             (422, 4422)  a graph operation's input (unknown or overlapping seeds)
    │   └── InvalidVolume            (422)        a volume layer of a WEBKNOSSOS zip we cannot import
    ├── StorageRefused               (502, 1014)  a dataset's object store refused collab's
    │                                             credentials (server configuration)
    └── Unavailable                  (503, 1013)  database down, server shutting down,
                                                  voxels unreadable (collab/segmentation/voxels.py),
                                                  a dataset's object store unreachable

WebSocket close codes 4400–4499 are final (the stock y-websocket client stops
reconnecting); 1008, 1009, 1011, 1012 and 1013 let it retry. docs/protocol.md lists them.
"""

from __future__ import annotations

from typing import Any, ClassVar


class CollabError(Exception):
    status: ClassVar[int] = 500
    close_code: ClassVar[int] = 1011
    code: ClassVar[str] = "internal"

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.details = details

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        body.update(self.details)
        return {"error": body}


class ConfigError(CollabError, ValueError):
    code = "config"


class BadRequest(CollabError, ValueError):
    status = 400
    close_code = 4400
    code = "bad_request"


class InvalidJSON(BadRequest):
    code = "invalid_json"


class ProtocolError(BadRequest):
    code = "protocol_error"


class UnknownMessageType(ProtocolError):
    code = "unknown_message_type"


class Unauthenticated(CollabError, PermissionError):
    status = 401
    close_code = 4401
    code = "unauthenticated"


class Forbidden(CollabError, PermissionError):
    status = 403
    close_code = 4403
    code = "forbidden"


class NotFound(CollabError, LookupError):
    status = 404
    close_code = 4404
    code = "not_found"


class Conflict(CollabError):
    status = 409
    close_code = 4409
    code = "conflict"


class BadState(Conflict):
    code = "bad_state"


class NoTask(NotFound):
    code = "no_task"


class PayloadTooLarge(CollabError):
    status = 413
    close_code = 1009
    code = "too_large"


class DocumentFull(PayloadTooLarge):
    """A document reached ``COLLAB_MAX_DOCUMENT_BYTES``: no retry helps (final close)."""

    close_code = 4413
    code = "document_full"


class RateLimited(CollabError):
    """Over a rate limit (collab/limits.py); ``retry_after`` says when to try again."""

    status = 429
    close_code = 1008
    code = "rate_limited"


class Unprocessable(CollabError, ValueError):
    status = 422
    close_code = 4422
    code = "unprocessable"


class BadUpdate(Unprocessable):
    code = "bad_update"


class InvalidTask(Unprocessable):
    """One element of a task batch is wrong; ``index`` says which (nothing is stored)."""

    code = "invalid_task"


class InvalidVolume(Unprocessable):
    """A volume layer of an uploaded WEBKNOSSOS zip (its ``<volume>`` element
    or its data zip) that cannot be imported; the message names the layer,
    the file and what is wrong."""

    code = "invalid_volume"


class InvalidGraph(Unprocessable):
    """A graph, or a cut's sources and sinks, that a graph operation cannot
    take (collab/proofreading/graph.py); the message says which part."""

    code = "invalid_graph"


class LayoutError(Unprocessable):
    """A dataset folder we cannot read; the message names the file and field."""

    code = "bad_layout"


class StorageRefused(CollabError):
    """The object store holding a dataset answered 401/403 to collab's own
    credentials (collab/volume/storage.py): the server is misconfigured, not
    the caller, so it is a 5xx; retrying will not help until it is fixed."""

    status = 502
    close_code = 1014
    code = "storage_refused"


class Unavailable(CollabError):
    status = 503
    close_code = 1013
    code = "unavailable"
