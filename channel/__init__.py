"""The worker channel: framing codec, message shapes and the protocol tables.

Shared by the worker and the Python controller; the Node controller reads the same tables from a
file generated from :mod:`channel.protocol`.
"""

from channel.codec import MAX_FRAME_BYTES, FrameDecoder, encode_frame
from channel.messages import (
    ControllerNotification,
    Log,
    MessageShapeError,
    Notification,
    Request,
    Response,
    parse_controller_message,
    parse_worker_message,
)

__all__ = [
    "MAX_FRAME_BYTES",
    "ControllerNotification",
    "FrameDecoder",
    "Log",
    "MessageShapeError",
    "Notification",
    "Request",
    "Response",
    "encode_frame",
    "parse_controller_message",
    "parse_worker_message",
]
