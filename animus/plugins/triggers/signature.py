"""Webhook signatures: GitHub's, and the Standard Webhooks scheme (signed timestamps).

GitHub: ``X-Hub-Signature-256: sha256=<hex>``, HMAC-SHA256 of the raw body
with the trigger's secret. Nothing else is accepted: no signature, a SHA-1
``X-Hub-Signature`` alone, or a wrong one all fail. The body alone is
signed, so a captured delivery stays valid: replays are caught by delivery
id (``animus.plugins.triggers.webhook.deliveries``).

Standard Webhooks (standardwebhooks.com, used by Svix and others):
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature: v1,<base64>``,
HMAC-SHA256 of ``<id>.<timestamp>.<body>``; a ``whsec_`` secret is base64.
The timestamp is signed, so one older (or newer) than the tolerance is
refused too. Every comparison is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

__all__ = ["sign", "verify", "sign_standard", "verify_standard", "TOLERANCE_SECS"]

TOLERANCE_SECS = 300.0

PREFIX = "sha256="


def sign(secret: str, body: bytes) -> str:
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    if not secret or not header or not header.startswith(PREFIX):
        return False
    return hmac.compare_digest(sign(secret, body), header.strip())


def _standard_key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_"):], validate=True)
        except (binascii.Error, ValueError):
            return secret.encode()
    return secret.encode()


def sign_standard(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(_standard_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify_standard(secret: str, msg_id: str | None, timestamp: str | None, body: bytes, header: str | None,
                    now: float, tolerance: float = TOLERANCE_SECS) -> bool:
    """A valid ``v1`` signature (one of the space-separated ones) over a fresh timestamp."""
    if not secret or not msg_id or not timestamp or not header:
        return False
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > tolerance:
        return False
    want = sign_standard(secret, msg_id, timestamp, body)
    return any(hmac.compare_digest(want, part.strip()) for part in header.split(" ") if part.startswith("v1,"))
