from __future__ import annotations

from typing import Any


class Jobs:
    def __init__(self, client: Any) -> None:
        self.c = client
