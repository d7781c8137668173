"""Dependencies of the routes: the control plane, and the caller's API key (with its scope)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.errors import ApiError
from api.keys import ApiKey, lookup
from cluster.plane import ControlPlane

_OPEN = ApiKey(id="-", name="auth disabled", scope="write", created=0.0)


def get_plane(request: Request) -> ControlPlane:
    plane: ControlPlane = request.app.state.plane
    return plane


Plane = Annotated[ControlPlane, Depends(get_plane)]


def api_key(request: Request, plane: Plane) -> ApiKey:
    """The bearer token's key; 401 without a valid one (unless ``api.auth`` is off)."""
    if not plane.settings.api.auth:
        return _OPEN
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="ulak"'}
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthorized",
            "missing API key: send 'Authorization: Bearer <key>' (create a key with `ulak keys create`)",
            headers=challenge,
        )
    key = lookup(plane.client, token.strip())
    if key is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key", headers=challenge)
    return key


Key = Annotated[ApiKey, Depends(api_key)]


def write_key(key: Key) -> ApiKey:
    """A key allowed to change things; 403 for a read-only key."""
    if key.scope != "write":
        raise ApiError(
            403, "forbidden", f"API key {key.id} ({key.name}) is read-only; this needs a write key"
        )
    return key


WriteKey = Annotated[ApiKey, Depends(write_key)]
