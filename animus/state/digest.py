"""sha256 hex digests without loading OpenSSL, for the CLI's fast path.

``hashlib`` binds OpenSSL at import, ~2.5 ms of every CLI call that hashes
anything (the scope name, the compiled config's check); CPython's own
built-in sha256 module gives the same digest.
"""

from __future__ import annotations

__all__ = ["sha256_hex"]


def sha256_hex(data: bytes) -> str:
    for name in ("_sha256", "_sha2"):  # CPython <= 3.11, >= 3.12
        try:
            return str(__import__(name).sha256(data).hexdigest())
        except ImportError:
            continue
    import hashlib

    return hashlib.sha256(data).hexdigest()
