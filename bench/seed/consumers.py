"""The live benchmark's baseline: forward a group message's text, nothing else."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

RAW_GROUP = "bench-raw"


class RawForwardConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        # The same gate as the inbox consumer, so connecting costs the same.
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=4401)
            return
        await self.channel_layer.group_add(RAW_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(RAW_GROUP, self.channel_name)

    async def bench_forward(self, message: dict[str, Any]) -> None:
        await self.send(message["text"])
