"""Build the FastAPI app around a :class:`cluster.plane.ControlPlane` (``api/__main__.py`` serves it)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from api import errors, metrics
from api.deps import Key
from api.routes import campaigns, conversions, health, jobs, me, operators, replies, sendtimes, web, webhooks
from api.views import ViewCache
from cluster.jobs.store import view_async
from cluster.plane import ControlPlane
from ulak import __version__


def create_app(plane: ControlPlane) -> FastAPI:
    docs = "docs" in plane.settings.api.public
    app = FastAPI(
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        title="Ulak",
        version=__version__,
        description="Bulk-SMS dispatch over SMPP: submit campaigns, follow them, read their reports. "
        "Authenticate with 'Authorization: Bearer <key>' (create a key with `ulak keys create`).",
    )
    app.state.plane = plane
    app.state.views = ViewCache(
        lambda job_id: view_async(plane.aclient, job_id), max_age=plane.settings.api.view_max_age
    )
    app.state.metrics = metrics.registry(plane)
    errors.install(app)
    app.include_router(jobs.router)
    app.include_router(campaigns.router)
    app.include_router(operators.router)
    app.include_router(conversions.router)
    app.include_router(replies.router)
    app.include_router(webhooks.router)
    app.include_router(sendtimes.router)
    app.include_router(me.router)
    app.include_router(health.router)
    web.mount(app)
    if not docs:  # the schema only, to a key holder; the HTML pages could not send the key

        @app.get("/openapi.json", include_in_schema=False)
        async def openapi(key: Key) -> JSONResponse:
            return JSONResponse(app.openapi())

    return app
