"""A slow upstream for tests/test_gunicorn.py and benchmarks/bench_gunicorn.py:
a TCP server (asyncio, its own process, neutral to every worker kind) that
reads lines holding a delay in seconds, waits that long and answers
``ok <delay>\\n``.  Prints its port.

    python3 upstream.py [PORT]
"""
import asyncio
import sys


async def serve(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            delay = float(line.strip() or 0)
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(b"ok %s\n" % line.strip())
            await writer.drain()
    except (ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
