"""Small helpers every adapter test module uses."""

from __future__ import annotations

import socket


def closed_port_url() -> str:
    """A loopback URL nobody listens on: the 'connection refused' case of every fault matrix."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
