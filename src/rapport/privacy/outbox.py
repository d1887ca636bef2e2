"""Messages to customers (one-time codes): the notifier interface and its development outbox.

Production deployments plug in an email/SMS gateway implementing :class:`Notifier`. The
development outbox keeps the last messages in memory and logs them, so a developer can read the
code they were sent; it must not be used where real customers are reached.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from rapport.models.base import utcnow

log = logging.getLogger("rapport.outbox")


@dataclass(frozen=True, slots=True)
class Message:
    channel: str  # email | phone
    to: str
    subject: str
    body: str
    at: str = field(default_factory=lambda: utcnow().isoformat())


class Notifier(Protocol):
    def send(self, message: Message) -> None: ...


class DevOutbox:
    """Stores (last ``keep``) and logs messages instead of sending them. Development only."""

    def __init__(self, keep: int = 100) -> None:
        self._messages: deque[Message] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def send(self, message: Message) -> None:
        with self._lock:
            self._messages.append(message)
        log.info("dev outbox (not sent) to=%s subject=%s body=%s", message.to, message.subject, message.body)

    @property
    def messages(self) -> list[Message]:
        with self._lock:
            return list(self._messages)

    def last_to(self, to: str) -> Message | None:
        return next((m for m in reversed(self.messages) if m.to == to), None)
