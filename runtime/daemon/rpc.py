"""Requests from one node's admin API to another node, over the authenticated transport.

``admin`` messages: a request ``admin.<op>`` carries ``req`` (a number the
asker picks) and its fields as the payload; the answer is ``admin.reply`` with
the same ``req`` and a payload ``{"ok": true, "result": ...}`` or ``{"ok":
false, "error": "...", "status": 409}``.  The node that answers does so in its
node task (its machines' state is consistent); the asker waits at most
``timeout_s``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from wolfpack.runtime.daemon.operations import AdminError
from wolfpack.runtime.transport.messages import Message

log = logging.getLogger("wolfpack.rpc")

Handler = Callable[[int, Mapping[str, Any]], Awaitable[Any]]


class Rpc:
    def __init__(self, send: Callable[[int, Message], bool], handlers: Mapping[str, Handler],
                 spawn: Callable[[Any], None], timeout_s: float = 3.0) -> None:
        self._send = send
        self._handlers = dict(handlers)
        self._spawn = spawn
        self.timeout_s = timeout_s
        self._numbers = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}

    async def call(self, node: int, op: str, fields: Mapping[str, Any] | None = None,
                   timeout_s: float | None = None) -> Any:
        """Ask ``node`` to do ``op``; its result, or :class:`AdminError` (its refusal, or no answer)."""
        req = next(self._numbers)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[req] = future
        try:
            if not self._send(node, Message("admin", op, {"req": req}, dict(fields or {}))):
                raise AdminError(f"node {node} is not connected; it may be down: try again, or ask another node",
                                 503)
            return await asyncio.wait_for(future, timeout_s or self.timeout_s)
        except TimeoutError:
            raise AdminError(f"node {node} did not answer within {timeout_s or self.timeout_s:g} s; it may be down or "
                             "busy: try again", 504) from None
        finally:
            self._waiting.pop(req, None)

    def receive(self, src: int, message: Message) -> None:
        req = message.args.get("req")
        if not isinstance(req, int):
            log.warning("node %d sent admin.%s without a request number; dropped", src, message.name)
            return
        payload = message.payload if isinstance(message.payload, dict) else {}
        if message.name == "reply":
            future = self._waiting.get(req)
            if future is None or future.done():
                return
            if payload.get("ok"):
                future.set_result(payload.get("result"))
            else:
                status = payload.get("status")
                future.set_exception(AdminError(f"node {src}: {payload.get('error', 'refused')}",
                                                status if isinstance(status, int) else 409))
            return
        handler = self._handlers.get(message.name)
        if handler is None:
            self._reply(src, req, {"ok": False, "error": f"unknown request {message.name!r}", "status": 400})
            return
        self._spawn(self._answer(src, req, handler, payload))

    async def _answer(self, src: int, req: int, handler: Handler, payload: Mapping[str, Any]) -> None:
        try:
            result = await handler(src, payload)
            self._reply(src, req, {"ok": True, "result": result})
        except AdminError as exc:
            self._reply(src, req, {"ok": False, "error": str(exc), "status": exc.status})
        except Exception as exc:
            log.exception("admin request from node %d failed", src)
            self._reply(src, req, {"ok": False, "error": f"internal error: {exc}", "status": 500})

    def _reply(self, dst: int, req: int, payload: dict[str, Any]) -> None:
        self._send(dst, Message("admin", "reply", {"req": req}, payload))
