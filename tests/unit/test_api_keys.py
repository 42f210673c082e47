"""API keys: the token format, hashing (nothing usable stored) and scoping."""

from __future__ import annotations

import hashlib

import pytest

from imgsearch.api_keys import ApiKey, generate_key, hash_secret, split_key


def stored(access: str = "write", collections: list[int] | None = None, **extra: object) -> ApiKey:
    key = generate_key()
    return ApiKey.model_validate(
        {"key_id": key.key_id, "secret_sha256": hash_secret(key.secret), "access": access,
         "collections": collections, "created_at": "2026-11-27T00:00:00+00:00", **extra}
    )  # fmt: skip


def test_a_token_splits_into_id_and_secret_and_only_the_hash_is_kept() -> None:
    new = generate_key()
    assert split_key(new.token) == (new.key_id, new.secret)
    assert split_key(f"  {new.token}\n") == (new.key_id, new.secret), "pasted with spaces"
    digest = hash_secret(new.secret)
    assert digest == hashlib.sha256(new.secret.encode()).hexdigest()
    assert new.secret not in digest and len(digest) == 64
    assert len({generate_key().secret for _ in range(100)}) == 100, "no two secrets alike"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "isk",
        "isk__",
        "isk_0123456789ab",
        "isk_0123456789ab_short",
        "key_0123456789ab_" + "a" * 43,  # another prefix
        "isk_0123456789AB_" + "a" * 43,  # upper-case id
        "isk_0123456789ab_" + "a" * 44,  # secret too long
        "isk_0123456789ab_" + "a" * 42 + "!",  # not URL-safe base64
    ],
)
def test_malformed_tokens_do_not_split(token: str) -> None:
    assert split_key(token) is None


def test_matches_only_its_own_secret() -> None:
    new = generate_key()
    key = ApiKey(key_id=new.key_id, secret_sha256=hash_secret(new.secret), access="read",
                 created_at="2026-11-27T00:00:00+00:00")  # fmt: skip
    assert key.matches(new.secret)
    assert not key.matches(new.secret[:-1] + ("A" if new.secret[-1] != "A" else "B"))
    assert not key.matches(generate_key().secret)


@pytest.mark.parametrize(
    ("access", "collections", "revoked", "collection", "write", "allowed"),
    [
        ("write", None, False, 1, True, True),
        ("write", None, False, 1, False, True),  # write implies read
        ("write", None, False, None, True, True),  # creating: an all-collections key
        ("read", None, False, 1, False, True),
        ("read", None, False, 1, True, False),
        ("read", None, False, None, True, False),
        ("write", [1, 2], False, 2, True, True),
        ("write", [1, 2], False, 3, True, False),
        ("write", [1, 2], False, None, True, False),  # a listed key cannot create
        ("read", [1], False, 1, False, True),
        ("read", [1], False, 2, False, False),
        ("read", [], False, 1, False, False),
        ("write", None, True, 1, True, False),  # revoked
        ("read", [1], True, 1, False, False),
    ],
)
def test_scopes(
    access: str, collections: list[int] | None, revoked: bool, collection: int | None,
    write: bool, allowed: bool,
) -> None:  # fmt: skip
    extra = {"revoked_at": "2026-11-27T01:00:00+00:00"} if revoked else {}
    key = stored(access, collections, **extra)
    assert key.revoked is revoked
    assert key.permits(collection, write=write) is allowed
