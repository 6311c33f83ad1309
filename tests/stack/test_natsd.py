"""The embedded nats-server of `sayna-sip up` comes back on its port after a stop, even
while the connections of the stopped one linger in TIME_WAIT."""

from __future__ import annotations

import socket
from pathlib import Path

import nats

from sayna_sip.cli.natsd import EmbeddedNats, port_is_free
from tests.stack.test_up import free_port


def test_a_port_whose_server_just_closed_its_connections_is_free() -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nats-server does
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    served.close()  # the server closes first: its side of the connection is in TIME_WAIT
    client.recv(1)
    client.close()
    listener.close()

    assert port_is_free(port)


async def test_a_restarted_embedded_nats_keeps_its_port(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "nats.port").write_text(f"{port}\n")  # where it ran last time
    first = EmbeddedNats(tmp_path, lambda line: None)
    assert await first.start() == f"nats://127.0.0.1:{port}"
    nc = await nats.connect(first.url, allow_reconnect=False)
    await first.stop()  # the server closes the client's connection: TIME_WAIT on `port`
    await nc.close()

    again = EmbeddedNats(tmp_path, lambda line: None)
    try:
        assert await again.start() == f"nats://127.0.0.1:{port}"
    finally:
        await again.stop()
    assert (tmp_path / "nats.port").read_text() == f"{port}\n"
