"""Dependencies of the routes: the control plane, and the caller's API key (with its scope)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Depends, Request

from api.errors import ApiError
from api.keys import ApiKey, lookup_async
from api.views import ViewCache
from cluster.plane import ControlPlane

_OPEN = ApiKey(id="-", name="auth disabled", scope="write", created=0.0)


async def get_plane(request: Request) -> ControlPlane:
    plane: ControlPlane = request.app.state.plane
    return plane


Plane = Annotated[ControlPlane, Depends(get_plane)]


async def get_views(request: Request) -> ViewCache:
    views: ViewCache = request.app.state.views
    return views


Views = Annotated[ViewCache, Depends(get_views)]


# Recently seen tokens -> (key or None, until): saves a Redis round trip per request. A revoked key
# stops working within KEY_CACHE_SECONDS.
KEY_CACHE_SECONDS = 5.0
_seen: dict[str, tuple[ApiKey | None, float]] = {}


async def api_key(request: Request, plane: Plane) -> ApiKey:
    """The bearer token's key; 401 without a valid one (unless ``api.auth`` is off)."""
    if not plane.settings.api.auth:
        return _OPEN
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    challenge = {"WWW-Authenticate": 'Bearer realm="ulak"'}
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401,
            "unauthorized",
            "missing API key: send 'Authorization: Bearer <key>' (create a key with `ulak keys create`)",
            headers=challenge,
        )
    now = time.monotonic()
    cached = _seen.get(token)
    if cached is not None and cached[1] > now:
        key = cached[0]
    else:
        key = await lookup_async(plane.aclient, token)
        if len(_seen) > 10_000:
            _seen.clear()
        _seen[token] = (key, now + KEY_CACHE_SECONDS)
    if key is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key", headers=challenge)
    return key


Key = Annotated[ApiKey, Depends(api_key)]


async def write_key(key: Key) -> ApiKey:
    """A key allowed to change things; 403 for a read-only key."""
    if key.scope != "write":
        raise ApiError(
            403, "forbidden", f"API key {key.id} ({key.name}) is read-only; this needs a write key"
        )
    return key


WriteKey = Annotated[ApiKey, Depends(write_key)]


def open_to(endpoint: str) -> Any:
    """A dependency: no key needed if *endpoint* is listed in ``api.public``, else as :data:`Key`."""

    async def check(request: Request, plane: Plane) -> None:
        if endpoint not in plane.settings.api.public:
            await api_key(request, plane)

    return Depends(check)
