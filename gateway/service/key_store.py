"""API keys in the system index: create (the secret is returned once), list, revoke, check."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.service.system_index import SystemIndex
from imgsearch.api_keys import Access, ApiKey, NewKey, generate_key, hash_secret, split_key
from imgsearch.errors import Forbidden, NotFound

KIND = "api_key"
INVALID_KEY = "Invalid API key"


def _now() -> str:
    return datetime.now(UTC).isoformat()


class KeyStore:
    def __init__(self, system: SystemIndex) -> None:
        self.system = system

    def create(
        self, access: Access, collections: list[int] | None = None, label: str = ""
    ) -> tuple[ApiKey, str]:
        """A new key and its token (the only time the secret exists outside the client)."""
        new: NewKey = generate_key()
        key = ApiKey(
            key_id=new.key_id,
            secret_sha256=hash_secret(new.secret),
            access=access,
            collections=sorted(set(collections)) if collections is not None else None,
            label=label,
            created_at=_now(),
        )
        self.system.put(f"{KIND}:{key.key_id}", {"kind": KIND, **key.model_dump()})
        return key, new.token

    def list(self) -> list[ApiKey]:
        keys = [ApiKey.model_validate(doc) for doc in self.system.all(KIND)]
        return sorted(keys, key=lambda k: k.created_at)

    def revoke(self, key_id: str) -> ApiKey:
        doc = self.system.get(f"{KIND}:{key_id}")
        if doc is None:
            raise NotFound(f"no API key {key_id!r}")
        key = ApiKey.model_validate(doc)
        if not key.revoked:
            key = key.model_copy(update={"revoked_at": _now()})
            self.system.put(f"{KIND}:{key_id}", {"kind": KIND, **key.model_dump()})
        return key

    def check(self, token: str | None) -> ApiKey:
        """The stored, unrevoked key ``token`` is; ``Forbidden`` for anything else."""
        parts = split_key(token or "")
        if parts is None:
            raise Forbidden(INVALID_KEY)
        key_id, secret = parts
        doc = self.system.get(f"{KIND}:{key_id}")
        if doc is None:
            raise Forbidden(INVALID_KEY)
        key = ApiKey.model_validate(doc)
        if not key.matches(secret) or key.revoked:
            raise Forbidden(INVALID_KEY)
        return key
