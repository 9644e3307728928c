"""`edgescreen models train-device`: train every device model on avatars, then export, quantise behind the parity
gate, card, sign, bundle and install them, inside one time budget.

The budget is shared out by role (BUDGET_SHARES); each role's trainer plans its data and epochs from its share.
The booth's trainer lives in training/device_models/gait.py; when it cannot train, the command says so in one
line and ships the other roles. A trained model goes on to export only through the learning gate
(training.device_models.cards.learned): when its pooled subject-disjoint CV is not clear of chance it is not
installed, the run names it with its figure and CI, and its card is still written, marked not shipped."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from contract.errors import EdgeScreenError
from export.device_models.chain import WITHOUT_MODEL, ShippedModel, bundle_and_install, role_of, ship
from training.device_models import TrainedModel
from training.device_models.cards import learned, write_cards

log = logging.getLogger(__name__)

Role = Literal["booth", "station", "posture"]
ROLES: tuple[Role, ...] = ("booth", "station", "posture")
BUDGET_SHARES: dict[str, float] = {"booth": 0.45, "station": 0.35, "posture": 0.12}  # the rest: export and bundles


class DeviceModelsError(EdgeScreenError, RuntimeError):
    """The device models could not be trained or shipped."""


@dataclass
class DeviceRun:
    shipped: list[ShippedModel] = field(default_factory=list)
    releases: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # role -> one line per model it did not install
    seconds: float = 0.0


def _trainer(role: Role) -> Callable[..., list[TrainedModel]]:
    if role == "booth":
        from training.device_models.gait import train_booth_models

        return train_booth_models
    if role == "station":
        from training.device_models.station import train_station_models

        return train_station_models
    from training.device_models.posture import train_posture_models

    return train_posture_models


def signing_key(out_dir: Path, given: Path | None) -> Path:
    """The site signing key: `given`, or a new one under out_dir/keys (its public half beside it, .pub)."""
    if given is not None:
        if not given.is_file():
            raise DeviceModelsError(f"signing key {given} does not exist (make one with `edgescreen export keygen`)")
        return given
    from export.bundle import generate_keypair

    key = out_dir / "keys" / "site-signing.pem"
    if not key.exists():
        generate_keypair(key, key.with_suffix(".pub"))
        log.info("new site signing key %s (public half %s): devices must trust it", key, key.with_suffix(".pub"))
    return key


def train_device_models(
    out_dir: Path, *, budget_s: float = 1800.0, seed: int = 0, roles: tuple[Role, ...] = ROLES,
    key: Path | None = None, bundle_dir: Path | None = None, data: dict[str, Path] | None = None,
    cards: Path | None = None,
) -> DeviceRun:  # fmt: skip
    """Train, ship and install the device models of `roles`; `data` may name an existing set per role."""
    started = time.monotonic()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = DeviceRun()
    cards_out = cards or out_dir / "models.md"
    measured: list[dict[str, Any]] = []  # every trained model's card, shipped or not, in training order
    for role in roles:
        share = BUDGET_SHARES[role] * budget_s
        kwargs: dict[str, object] = {"budget_s": share, "seed": seed}
        if data and role in data:
            kwargs["data"] = data[role]
        try:
            trained = _trainer(role)(out_dir / role, **kwargs)
        except NotImplementedError as exc:
            _skip(run, role, f"not trained: {exc}")
            continue
        for model in trained:
            why = learned(model.card)
            if why is not None:
                reason = f"{model.name}: {why}: not installed; {WITHOUT_MODEL[role_of(model)]}"
                _skip(run, role, reason)
                measured.append(dict(model.card, not_shipped=reason))
                continue
            run.shipped.append(ship(model, out_dir / role))
            measured.append(run.shipped[-1].card)
    if not run.shipped:
        if measured:  # what was measured is recorded, though nothing is installed
            write_cards(cards_out, measured)
        raise DeviceModelsError("no device model to install: " + "; ".join(
            f"{role}: {why}" for role, whys in run.skipped.items() for why in whys))  # fmt: skip
    key_path = signing_key(out_dir, key)
    from edge.bundles import default_bundle_dir

    run.releases = bundle_and_install(run.shipped, out_dir, key_path, bundle_dir or default_bundle_dir())
    write_cards(cards_out, measured)
    run.seconds = round(time.monotonic() - started, 1)
    return run


def _skip(run: DeviceRun, role: str, reason: str) -> None:
    run.skipped.setdefault(role, []).append(reason)
    log.error("%s: %s", role, reason)
