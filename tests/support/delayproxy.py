"""A TCP proxy on 127.0.0.1 that holds each chunk a client sends for a while before passing it on: a slow
object store, so that a test can catch an operator pass in the middle of its store requests. `holding` says
how many chunks it holds right now (a pass is in flight exactly while that is above zero), and `held` the first
line of each (for HTTP, its request line: which object a pass is reading)."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType


class DelayProxy:
    def __init__(self, target_host: str, target_port: int, delay: float) -> None:
        self.target = (target_host, target_port)
        self.delay = delay
        self.holding = 0
        self.held: list[str] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="delay-proxy", daemon=True)
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    def __enter__(self) -> DelayProxy:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the delay proxy did not start")
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self.target)
        self._writers |= {client_w, server_w}

        async def upstream() -> None:
            while chunk := await client_r.read(65536):
                line = chunk.split(b"\r\n", 1)[0].decode("latin-1")
                self.holding += 1
                self.held.append(line)
                try:
                    await asyncio.sleep(self.delay)  # the simulated latency itself, not a wait for something
                finally:
                    self.holding -= 1
                    self.held.remove(line)
                server_w.write(chunk)
                await server_w.drain()
            server_w.close()

        async def downstream() -> None:
            while chunk := await server_r.read(65536):
                client_w.write(chunk)
                await client_w.drain()
            client_w.close()

        try:
            await asyncio.gather(upstream(), downstream(), return_exceptions=True)
        finally:
            for writer in (client_w, server_w):
                writer.close()
                self._writers.discard(writer)
