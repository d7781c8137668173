"""Build the FastAPI app around a :class:`cluster.plane.ControlPlane` (``api/__main__.py`` serves it)."""

from __future__ import annotations

from fastapi import FastAPI

from api import errors
from api.routes import health, jobs, operators
from cluster.plane import ControlPlane
from ulak import __version__


def create_app(plane: ControlPlane) -> FastAPI:
    app = FastAPI(
        title="Ulak",
        version=__version__,
        description="Bulk-SMS dispatch over SMPP: submit campaigns, follow them, read their reports. "
        "Authenticate with 'Authorization: Bearer <key>' (create a key with `ulak keys create`).",
    )
    app.state.plane = plane
    errors.install(app)
    app.include_router(jobs.router)
    app.include_router(operators.router)
    app.include_router(health.router)
    return app
