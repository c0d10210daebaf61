"""`presswatch alerts`: the alert outbox and the delivery status of every channel."""

from __future__ import annotations
