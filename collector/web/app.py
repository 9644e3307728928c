"""The FastAPI application: routes are in pages.py and exports.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from collector.storage.engine import Database
from collector.timeutil import utcnow_naive
from collector.web.auth import NotLoggedIn, SessionMiddleware, csrf_token, current_user
from collector.web.throttle import LoginThrottle

HERE = Path(__file__).resolve().parent


def _connected() -> datetime | None:
    return None


def create_app(
    db: Database,
    secret: bytes,
    secure_cookies: bool = True,
    k_anonymity: int = 11,
    *,
    clock: Callable[[], datetime] | None = None,
    login_throttle: LoginThrottle | None = None,
    broker_down_since: Callable[[], datetime | None] | None = None,
) -> FastAPI:
    """The dashboard; `clock` (naive UTC) decides which screening weeks are released (tests pin it);
    `broker_down_since` (the ingest's, naive UTC or None) puts a banner on every page while the broker is away."""
    from collector.web import exports, followup, overview, pages
    from collector.web.palette import css

    app = FastAPI(title="EdgeScreen", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.db = db
    app.state.k = k_anonymity
    app.state.clock = clock or utcnow_naive
    app.state.broker_down_since = broker_down_since or _connected
    app.state.login_throttle = login_throttle or LoginThrottle()
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals["csrf_token"] = csrf_token
    app.state.templates = templates
    app.add_middleware(SessionMiddleware, secret=secret, secure=secure_cookies)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.exception_handler(NotLoggedIn)
    async def _login_first(request: Request, _exc: NotLoggedIn) -> Response:
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def _error_page(request: Request, exc: StarletteHTTPException) -> Response:
        """Errors as an HTML page with the navigation (an unknown URL, another site's page: 404)."""
        title = "Page not found" if exc.status_code == 404 else f"Error {exc.status_code}"
        message = (
            "This page does not exist, or it belongs to a site you do not have access to (not found)."
            if exc.status_code == 404
            else str(exc.detail)
        )
        user = None
        if request.state.session.get("user"):
            try:
                user = current_user(request)
            except NotLoggedIn:
                user = None
        response = pages.render(request, "error.html", user, title=title, message=message)
        response.status_code = exc.status_code
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.get("/palette.css", include_in_schema=False)
    def _palette() -> Response:
        return PlainTextResponse(css(), media_type="text/css", headers={"Cache-Control": "max-age=3600"})

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = "default-src 'self'; style-src 'self'; img-src 'self' data:"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    app.include_router(pages.router)
    app.include_router(overview.router)
    app.include_router(followup.router)
    app.include_router(exports.router)
    return app
