"""GitHub-style webhook signatures: ``X-Hub-Signature-256: sha256=<hex>``.

The signature is HMAC-SHA256 of the raw request body with the trigger's
secret; it is compared in constant time. Nothing else is accepted: no
signature, a SHA-1 ``X-Hub-Signature`` alone, or a wrong one all fail.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["sign", "verify"]

PREFIX = "sha256="


def sign(secret: str, body: bytes) -> str:
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    if not secret or not header or not header.startswith(PREFIX):
        return False
    return hmac.compare_digest(sign(secret, body), header.strip())
