"""mediaworker: a mediasoup-style SFU worker process, driven over a msgpack channel.

Run it as ``python -m worker``; see ``docs/protocol.md`` and the shared protocol page.
"""

__version__ = "0.1.0"
