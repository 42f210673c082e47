"""API keys for the collection API: generated once, stored hashed, scoped, revocable. Pure.

A key reads ``isk_<key id>_<secret>``. Only the key id and the SHA-256 of the secret are
stored: the secret carries 256 random bits, so a fast hash is as good as a slow one and a
stolen key table reveals no usable key. Comparison is in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

PREFIX = "isk"
_KEY = re.compile(r"^isk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")

Access = Literal["read", "write"]


@dataclass(frozen=True)
class NewKey:
    key_id: str
    secret: str

    @property
    def token(self) -> str:
        """What the operator hands out (printed once, never stored)."""
        return f"{PREFIX}_{self.key_id}_{self.secret}"


def generate_key() -> NewKey:
    return NewKey(key_id=secrets.token_hex(6), secret=secrets.token_urlsafe(32))


def split_key(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else ``None``."""
    match = _KEY.match(token.strip())
    return (match.group(1), match.group(2)) if match else None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKey(BaseModel):
    """A stored key: ``collections`` ``None`` means every collection; ``write`` implies read."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    key_id: str
    secret_sha256: str
    access: Access
    collections: list[int] | None = None
    label: str = ""
    created_at: str
    revoked_at: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(hash_secret(secret), self.secret_sha256)

    def permits(self, collection: int | None, *, write: bool) -> bool:
        """May this key read (or write) ``collection``? ``None``: an act on no one collection
        (creating one), which only an all-collections key may do."""
        if self.revoked or (write and self.access != "write"):
            return False
        if self.collections is None:
            return True
        return collection is not None and collection in self.collections
