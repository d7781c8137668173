"""API keys: bearer tokens whose SHA-256 is stored in Redis (the token itself is shown once, never kept).

Plain functions over a Redis client, used by the API's auth dependency and by ``ulak keys create``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

import redis

from ulak import keys

Scope = Literal["read", "write"]
TOKEN_PREFIX = "ulak_"


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scope: Scope
    created: float


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_key(client: redis.Redis, *, name: str, scope: Scope = "write") -> tuple[str, ApiKey]:
    """A new key: returns the token (show it to the user once) and its record."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(id=secrets.token_hex(4), name=name, scope=scope, created=round(time.time(), 3))
    client.hset(keys.API_KEYS, digest(token), json.dumps(key.__dict__))
    return token, key


def lookup(client: redis.Redis, token: str) -> ApiKey | None:
    raw = client.hget(keys.API_KEYS, digest(token))
    if raw is None:
        return None
    return ApiKey(**json.loads(raw))


async def lookup_async(client: Any, token: str) -> ApiKey | None:
    """:func:`lookup` over a ``redis.asyncio`` client."""
    raw = await client.hget(keys.API_KEYS, digest(token))
    return ApiKey(**json.loads(raw)) if raw is not None else None


def list_keys(client: redis.Redis) -> list[ApiKey]:
    raw: dict[bytes, bytes] = client.hgetall(keys.API_KEYS)  # type: ignore[assignment]
    return sorted((ApiKey(**json.loads(v)) for v in raw.values()), key=lambda k: k.created)


def revoke(client: redis.Redis, key_id: str) -> bool:
    raw: dict[bytes, bytes] = client.hgetall(keys.API_KEYS)  # type: ignore[assignment]
    for h, v in raw.items():
        if json.loads(v)["id"] == key_id:
            client.hdel(keys.API_KEYS, h)
            return True
    return False
