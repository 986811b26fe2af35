from __future__ import annotations

from typing import Any


class Actors:
    def __init__(self, client: Any) -> None:
        self.c = client

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass
