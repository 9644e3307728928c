"""HTML pages: login, fleet, alerts, device trends, booth screening results, head-pose trends."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from collector import words
from collector.alerts import text as alert_text
from collector.timeutil import utcnow_naive
from collector.users import PasswordCheckBusy, end_sessions, verify_user
from collector.web import charts, queries, screening
from collector.web.auth import User, check_csrf, current_user, end_session, require_site, start_session
from collector.web.suppression import SuppressedTable
from collector.web.throttle import LoginThrottle

router = APIRouter()
CurrentUser = Annotated[User, Depends(current_user)]

HEADPOSE_ANGLES = ("yaw_deg.mean", "roll_deg.mean", "pitch_deg.mean")
HEADPOSE_SHIFTS = ("lateral_shift_cm.mean", "sagittal_shift_cm.mean")
# The FPS chart shows the rate frames are analysed at, which the camera sets (a timed stage such as the
# analyzer reports what it alone could do, ~900 fps, and would flatten the camera's ~27).
CAMERA_FPS = ("fps.processed", "fps.capture", "fps.grab", "fps.min")


def render(request: Request, name: str, user: User | None, **context: Any) -> HTMLResponse:
    """A page; a logged-in user's navigation links each site to the pages its devices have."""
    templates = request.app.state.templates
    roles = queries.site_roles(request.app.state.db, user.sites) if user else {}
    down_since = request.app.state.broker_down_since() if user else None
    context = {"user": user, "site_roles": roles, "broker_down_since": down_since, **context}
    response: HTMLResponse = templates.TemplateResponse(request, name, context)
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
    db = request.app.state.db
    rows = queries.alerts(db, user.sites, states)
    groups = queries.alert_groups(rows, queries.device_roles(db, user.sites))
    texts = {
        a["alert_id"]: alert_text.plain_summary(alert_text.facts_from_alert(a, g.role))
        for g in groups
        for a in g.alerts
    }
    return render(request, "alerts.html", user, groups=groups, texts=texts, show=show)


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
    plots = device_plots(series)
    alerts = [a for a in queries.alerts(db, [site], ("open", "acknowledged")) if a["device_id"] == device_id]
    camera_fps = next((series[n].points[-1][1] for n in CAMERA_FPS if n in series and series[n].points), None)
    return render(
        request, "device.html", user, device=found, plots=plots, days=days, alerts=alerts, camera_fps=camera_fps
    )


def device_plots(series: dict[str, queries.Series]) -> list[Markup]:
    """A device's charts: means per unit (degrees, cm and ratios never share an axis), the time in each risk
    band per metric, head-pose severity, the camera's frame rate and the outbox."""
    plots: list[Markup] = []
    means = {n: s for n, s in series.items() if n.endswith(".mean") and n.count(".") == 1}
    for unit in ("degrees", "cm", "ratio", ""):
        chosen = {n: s for n, s in means.items() if words.unit_of(n) == unit}
        if chosen:
            title = f"Mean per window ({unit})" if unit else "Mean per window"
            plots.append(_lines(chosen, title, unit or "value"))
    shares: dict[str, dict[str, float]] = {}
    for name, s in series.items():
        metric, _, band = name.partition(".band.")
        if band and s.points:
            shares.setdefault(metric, {})[band] = sum(v for _, v in s.points) / len(s.points)
    if shares:
        rows = [(words.metric_label(m), shares[m]) for m in sorted(shares)]
        plots.append(charts.share_bars(rows, words.BANDS, "Share of time in each risk band", labels=words.BAND_WORDS))
    severity = {n: s for n, s in series.items() if n.startswith("severity.")}
    if severity:
        labels = {n: words.SEVERITY_ITEM_WORDS.get(n.split(".", 1)[1], n) for n in severity}
        plots.append(_lines(severity, "Head-pose severity (TWSTRS-like items)", "score", labels=labels))
    fps = next((n for n in CAMERA_FPS if n in series), None) or _slowest_stage(series)
    if fps:
        label = "frames analysed per second" if fps == "fps.processed" else fps
        plots.append(_lines({fps: series[fps]}, "Camera frame rate", "frames/s", labels={fps: label}, y_min=0))
    if "outbox_depth" in series:
        depth = {"outbox_depth": series["outbox_depth"]}
        plots.append(_lines(depth, "Scores waiting to be sent", "scores", labels={"outbox_depth": "outbox"}, y_min=0))
    return plots


def _slowest_stage(series: dict[str, queries.Series]) -> str | None:
    """Without a named camera stage, the stage with the lowest rate: the one the camera's pace shows in."""
    stages = [
        (sum(v for _, v in s.points) / len(s.points), n) for n, s in series.items() if n.startswith("fps.") and s.points
    ]
    return min(stages)[1] if stages else None


def _lines(
    chosen: dict[str, queries.Series],
    title: str,
    unit: str,
    *,
    labels: dict[str, str] | None = None,
    y_min: float | None = None,
) -> Markup:
    lines = {n: s.points for n, s in sorted(chosen.items())}
    bands = {n: s.band for n, s in chosen.items() if s.band}
    labels = labels or {n: words.metric_label(n) for n in chosen}
    return charts.line_chart(lines, title, unit, bands=bands, labels=labels, y_min=y_min)


@router.get("/sites/{site}/screening", response_class=HTMLResponse)
def screening_page(
    request: Request, user: CurrentUser, site: str, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> HTMLResponse:
    """The released weekly counts only (the same cells as the CSV export); no individual walk-through."""
    require_site(user, site)
    app = request.app.state
    released = screening.release(app.db, site, app.clock(), days, app.k)
    by_class, quality = screening_charts(released)
    return render(
        request, "screening.html", user, site=site, released=released, by_class=by_class, quality=quality,
        days=days, k=app.k, release_delay_days=screening.RELEASE_DELAY.days, reason_words=screening.REASON_WORDS,
        unclassified_words=screening.UNCLASSIFIED_WORDS,
    )  # fmt: skip


def screening_charts(released: screening.ScreeningRelease) -> tuple[Markup, Markup]:
    """The released weekly cells as bars: by class, and by the reason a walk-through got no class."""
    suppressed = {"suppressed": "suppressed"}
    by_class = charts.stacked_bars(
        released.classes.rows, _released_stacks(released.classes), "Screened walk-throughs per week, by class",
        labels={**screening.CLASS_WORDS, **suppressed},
    )  # fmt: skip
    quality = charts.stacked_bars(
        released.outcomes.rows, _released_stacks(released.outcomes), "Walk-throughs not screened per week, by reason",
        labels={**screening.REASON_WORDS, **suppressed},
    )  # fmt: skip
    return by_class, quality


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
    since = request.app.state.clock().date() - timedelta(days=days)
    names = [*HEADPOSE_ANGLES, *HEADPOSE_SHIFTS, "severity.total"]
    means = queries.daily_means(db, site, "headpose", names, since)
    plots = []
    for device_id, per_metric in sorted(means.items()):
        for chosen, what, unit in ((HEADPOSE_ANGLES, "head angles", "degrees"), (HEADPOSE_SHIFTS, "head shift", "cm")):
            lines = {n: [(_day(d), v) for d, v, _ in per_metric[n]] for n in chosen if per_metric.get(n)}
            if lines:
                labels = {n: words.metric_label(n) for n in lines}
                plots.append(charts.line_chart(lines, f"{device_id}: daily mean {what}", unit, labels=labels))
        if per_metric.get("severity.total"):
            severity = {"severity.total": [(_day(d), v) for d, v, _ in per_metric["severity.total"]]}
            plots.append(
                charts.line_chart(
                    severity, f"{device_id}: daily mean severity score", "score",
                    labels={"severity.total": "severity total"}, y_min=0,
                )
            )  # fmt: skip
    recent = queries.recent_scores(db, site, "headpose")
    return render(request, "headpose.html", user, site=site, plots=plots, recent=recent, days=days)


def _day(text: str) -> datetime:
    """A daily value is drawn at noon, in the middle of its day between the midnight ticks."""
    return charts.later(datetime.fromisoformat(text), timedelta(hours=12))
