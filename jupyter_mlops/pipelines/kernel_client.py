"""The kernel client of a step: jupyter_client's, made ready without fixed waits.

jupyter_client's `wait_for_ready` ends by reading IOPub until it has been
silent for 0.2 s, and when the kernel answered before IOPub's subscription
took hold (ZeroMQ's slow joiner; common with a forked kernel, which answers
within milliseconds) it first waits 0.2 s more for a message that never
comes. Per step that was 0.2-0.4 s of a warm kernel's 0.45 s start. Here the
client is ready as soon as a kernel_info reply arrived on shell and a message
about one of its requests arrived on IOPub (which proves the subscription);
it retries every 20 ms until then. nbclient matches every later message to
its request by parent id, so what is left queued of the handshake is ignored.

Its sockets also retry a refused connection after 10 ms, not ZeroMQ's 100 ms:
a client connects as soon as the kernel process exists, before the kernel has
bound its ports, and the first retry decided when a forked kernel was ready.
"""

from __future__ import annotations

import time
from queue import Empty

import zmq
from jupyter_client.asynchronous import AsyncKernelClient

RETRY_SECONDS = 0.02
RECONNECT_MILLISECONDS = 10


class StepKernelClient(AsyncKernelClient):
    def _context_default(self) -> zmq.asyncio.Context:
        context = super()._context_default()  # the client's own, destroyed with it
        context.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MILLISECONDS)
        return context

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        asked: set[str] = set()
        answered = False
        while True:
            asked.add(self.kernel_info())
            if not answered:
                try:
                    reply = await self.shell_channel.get_msg(timeout=1)
                except Empty:
                    reply = None
                if reply is not None and reply["msg_type"] == "kernel_info_reply" and \
                        reply["parent_header"].get("msg_id") in asked:
                    answered = True
                    self._handle_kernel_info_reply(reply)
            if answered and await self._subscribed(asked):
                return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")

    async def _subscribed(self, asked: set[str]) -> bool:
        """Whether IOPub carried a message about one of our requests within
        RETRY_SECONDS (if it did, the subscription holds)."""
        until = time.monotonic() + RETRY_SECONDS
        while (left := until - time.monotonic()) > 0:
            try:
                message = await self.iopub_channel.get_msg(timeout=left)
            except Empty:
                return False
            if message["parent_header"].get("msg_id") in asked:
                return True
        return False
