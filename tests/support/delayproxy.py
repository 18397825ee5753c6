"""A TCP proxy on 127.0.0.1 that holds each chunk a client sends for a while before passing it on: a slow
object store, so that a test can catch an operator pass in the middle of its store requests. `holding` says
how many chunks it holds right now (a pass is in flight exactly while that is above zero)."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType


class DelayProxy:
    def __init__(self, target_host: str, target_port: int, delay: float) -> None:
        self.target = (target_host, target_port)
        self.delay = delay
        self.holding = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="delay-proxy", daemon=True)

    def __enter__(self) -> DelayProxy:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the delay proxy did not start")
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()
        server.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self.target)

        async def upstream() -> None:
            while chunk := await client_r.read(65536):
                self.holding += 1
                try:
                    await asyncio.sleep(self.delay)  # the simulated latency itself, not a wait for something
                finally:
                    self.holding -= 1
                server_w.write(chunk)
                await server_w.drain()
            server_w.close()

        async def downstream() -> None:
            while chunk := await server_r.read(65536):
                client_w.write(chunk)
                await client_w.drain()
            client_w.close()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)
