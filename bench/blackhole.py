"""A hook that never answers: `python -m bench.blackhole --port P` accepts TCP
connections and holds them open without reading or writing (no TLS handshake either),
the way a wedged load balancer or a SYN-accepting firewall behaves."""

from __future__ import annotations

import argparse
import asyncio


async def _hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the client gives up and closes; never a byte back
    writer.close()


async def serve(port: int) -> None:
    server = await asyncio.start_server(_hold, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.blackhole")
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
