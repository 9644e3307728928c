"""HTML pages: login, fleet, alerts, device trends, booth screening results, head-pose trends."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from collector.timeutil import utcnow_naive
from collector.users import PasswordCheckBusy, end_sessions, verify_user
from collector.web import charts, queries, screening
from collector.web.auth import User, check_csrf, current_user, end_session, require_site, start_session
from collector.web.suppression import SuppressedTable
from collector.web.throttle import LoginThrottle

router = APIRouter()
CurrentUser = Annotated[User, Depends(current_user)]

# Device page: which flattened metrics go on which chart. A booth's per-walk-through results (its class
# probabilities, `prob.*`, and measures) are on no chart: one point per walk-through would show each walk's
# result at its minute; the screening page shows the released weekly counts instead.
CHART_GROUPS: tuple[tuple[str, str, str], ...] = (
    ("Mean per window", ".mean", "value"),
    ("Share of the window in each risk band", ".band.", "fraction"),
    ("Head-pose severity (TWSTRS-like items)", "severity.", "score"),
    ("Frames per second", "fps.", "fps"),
    ("Outbox depth", "outbox_depth", "scores"),
)
HEADPOSE_TREND = (
    "yaw_deg.mean",
    "roll_deg.mean",
    "pitch_deg.mean",
    "lateral_shift_cm.mean",
    "sagittal_shift_cm.mean",
)


def render(request: Request, name: str, user: User | None, **context: Any) -> HTMLResponse:
    templates = request.app.state.templates
    response: HTMLResponse = templates.TemplateResponse(request, name, {"user": user, **context})
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return render(request, "login.html", None, error=None)


@router.post("/login")
def login(
    request: Request,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf_token)
    throttle: LoginThrottle = request.app.state.login_throttle
    account_key, address = username[:64], request.client.host if request.client else "unknown"
    wait = throttle.retry_after(account_key, address)
    if wait:
        message = f"Too many failed logins for this user or from this address; try again in {wait} s."
        return _login_refused(request, message, 429, wait)
    try:
        account = verify_user(request.app.state.db, username, password)
    except PasswordCheckBusy:
        return _login_refused(request, "The server is busy checking passwords; try again in a few seconds.", 503, 5)
    if account is None or not account.sites:
        throttle.failed(account_key, address)
        return _login_refused(request, "Unknown user or wrong password.", 401)
    throttle.succeeded(account_key)
    start_session(request, account)
    return RedirectResponse("/", status_code=303)


def _login_refused(request: Request, message: str, status: int, retry_after: int | None = None) -> HTMLResponse:
    response = render(request, "login.html", None, error=message)
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@router.post("/logout")
def logout(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    """Ends the session, and every other session of the same user (their cookies stop working too)."""
    check_csrf(request, csrf_token)
    username = request.state.session.get("user")
    if username:
        end_sessions(request.app.state.db, username)
    end_session(request)
    return RedirectResponse("/login", status_code=303)


@router.get("/", response_class=HTMLResponse)
def fleet(request: Request, user: CurrentUser) -> HTMLResponse:
    devices = queries.fleet(request.app.state.db, user.sites)
    open_alerts = queries.alerts(request.app.state.db, user.sites, ("open",))
    return render(request, "fleet.html", user, devices=devices, open_alerts=len(open_alerts), now=utcnow_naive())


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(request: Request, user: CurrentUser, show: str = "active") -> HTMLResponse:
    states = ("open", "acknowledged", "resolved") if show == "all" else ("open", "acknowledged")
    rows = queries.alerts(request.app.state.db, user.sites, states)
    return render(request, "alerts.html", user, alerts=rows, show=show)


def _alert_transition(request: Request, user: User, alert_id: str, csrf: str, state: str) -> Response:
    check_csrf(request, csrf)
    found = queries.alert(request.app.state.db, alert_id)
    if found is None or found["site"] not in user.sites:
        raise HTTPException(status_code=404, detail="not found")
    if not queries.set_alert_state(request.app.state.db, alert_id, state, user.username):
        raise HTTPException(status_code=409, detail=f"alert is already {found['state']}")
    return RedirectResponse("/alerts", status_code=303)


@router.post("/alerts/{alert_id}/acknowledge")
def acknowledge(
    request: Request, user: CurrentUser, alert_id: str, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    return _alert_transition(request, user, alert_id, csrf_token, "acknowledged")


@router.post("/alerts/{alert_id}/resolve")
def resolve(request: Request, user: CurrentUser, alert_id: str, csrf_token: Annotated[str, Form()] = "") -> Response:
    return _alert_transition(request, user, alert_id, csrf_token, "resolved")


@router.get("/sites/{site}/devices/{device_id}", response_class=HTMLResponse)
def device_page(
    request: Request, user: CurrentUser, site: str, device_id: str, days: Annotated[int, Query(ge=1, le=366)] = 7
) -> HTMLResponse:
    require_site(user, site)
    db = request.app.state.db
    found = queries.device(db, site, device_id)
    if found is None:
        raise HTTPException(status_code=404, detail="not found")
    now = request.app.state.clock()
    series = queries.device_series(db, site, device_id, now - timedelta(days=days), now)
    plots = []
    for title, marker, unit in CHART_GROUPS:
        chosen = {n: s for n, s in series.items() if marker in n or n == marker}
        if marker == ".mean":
            chosen = {n: s for n, s in chosen.items() if n.count(".") == 1}
        if chosen:
            shown = dict(sorted(chosen.items())[:8])
            lines = {n: s.points for n, s in shown.items()}
            bands = {n: s.band for n, s in shown.items() if s.band}
            plots.append(charts.line_chart(lines, title, unit, bands=bands))
    alerts = [a for a in queries.alerts(db, [site], ("open", "acknowledged")) if a["device_id"] == device_id]
    return render(request, "device.html", user, device=found, plots=plots, days=days, alerts=alerts)


@router.get("/sites/{site}/screening", response_class=HTMLResponse)
def screening_page(
    request: Request, user: CurrentUser, site: str, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> HTMLResponse:
    """The released weekly counts only (the same cells as the CSV export); no individual walk-through."""
    require_site(user, site)
    app = request.app.state
    released = screening.release(app.db, site, app.clock(), days, app.k)
    by_class = charts.stacked_bars(
        released.classes.rows, _released_stacks(released.classes), "Screened walk-throughs per week, by class"
    )
    quality = charts.stacked_bars(
        released.outcomes.rows, _released_stacks(released.outcomes), "Walk-throughs not screened per week, by reason"
    )
    return render(
        request, "screening.html", user, site=site, released=released, by_class=by_class, quality=quality,
        days=days, k=app.k, release_delay_days=screening.RELEASE_DELAY.days,
    )  # fmt: skip


def _released_stacks(table: SuppressedTable) -> dict[str, list[int | None]]:
    """Bar segments of the released cells; the blanks of a week draw as one grey 'suppressed' segment,
    which is only what its released total minus its released cells says anyway."""
    stacks: dict[str, list[int | None]] = {c: [] for c in table.columns}
    stacks["suppressed"] = []
    n_cols = len(table.columns)
    for r in range(len(table.rows)):
        shown = [None if table.suppressed[r][c] else table.value(r, c) for c in range(n_cols)]
        for name, value in zip(table.columns, shown, strict=True):
            stacks[name].append(value)
        total = None if table.suppressed[r][n_cols] else table.value(r, n_cols)
        rest = None if total is None else total - sum(v for v in shown if v is not None)
        stacks["suppressed"].append(rest or None)
    return stacks


@router.get("/sites/{site}/headpose", response_class=HTMLResponse)
def headpose_page(
    request: Request, user: CurrentUser, site: str, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> HTMLResponse:
    require_site(user, site)
    db = request.app.state.db
    since = date.today() - timedelta(days=days)
    names = [*HEADPOSE_TREND, "severity.total"]
    means = queries.daily_means(db, site, "headpose", names, since)
    plots = []
    for device_id, per_metric in sorted(means.items()):
        angles = {
            n.removesuffix(".mean"): [(_day(d), v) for d, v, _ in per_metric[n]]
            for n in HEADPOSE_TREND
            if per_metric.get(n)
        }
        if angles:
            plots.append(charts.line_chart(angles, f"{device_id}: daily mean head pose", "degrees / cm"))
        if per_metric.get("severity.total"):
            severity = {"severity total": [(_day(d), v) for d, v, _ in per_metric["severity.total"]]}
            plots.append(charts.line_chart(severity, f"{device_id}: daily mean severity score", "score"))
    recent = queries.recent_scores(db, site, "headpose")
    return render(request, "headpose.html", user, site=site, plots=plots, recent=recent, days=days)


def _day(text: str) -> datetime:
    return datetime.fromisoformat(text)
