"""Delivery receipts: the collector tells a device which of its scores are stored.

Published by the collector after each committed batch, QoS 1, on `edgescreen/v1/{site}/{device}/receipts`,
which only that device may read (and only collectors write). A receipt lists the `message_id`s of the
device's scores that the batch stored or found stored already (a duplicate); a device deletes a score
from its outbox only when a receipt names it, so a broker that loses what it acknowledged (a crash
before its periodic save) costs a re-send, not a score.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from typing import Literal

from pydantic import Field, ValidationError

from contract.wire import Identifier, WireError, WireModel, topic_for

RECEIPTS_KIND = "receipts"  # a reserved topic level (contract.wire.RESERVED_NAMES)
# Ids per receipt: 1000 ids are about 39 KB, under the broker's packet cap (64 KiB payloads).
MAX_RECEIPT_IDS = 1000


class Receipt(WireModel):
    schema_version: Literal[1] = 1
    site: Identifier
    device_id: Identifier
    message_ids: list[uuid.UUID] = Field(
        min_length=1, max_length=MAX_RECEIPT_IDS, description="scores of this device now stored (or stored before)"
    )


def receipts_topic(site: str, device_id: str) -> str:
    return topic_for(site, device_id, RECEIPTS_KIND)


def is_receipts_topic(topic: str) -> bool:
    return topic.endswith(f"/{RECEIPTS_KIND}")


def encode_receipts(site: str, device_id: str, message_ids: Iterable[str]) -> Iterator[bytes]:
    """The payloads of the receipts naming `message_ids` (already valid UUID strings), `MAX_RECEIPT_IDS` each.

    Built as plain JSON, without a model per receipt: the collector sends one per device per batch."""
    ids = list(message_ids)
    for start in range(0, len(ids), MAX_RECEIPT_IDS):
        body = {
            "schema_version": 1,
            "site": site,
            "device_id": device_id,
            "message_ids": ids[start : start + MAX_RECEIPT_IDS],
        }
        yield json.dumps(body, separators=(",", ":")).encode()


def decode_receipt(payload: bytes, site: str, device_id: str) -> list[str]:
    """The message ids a receipt for (`site`, `device_id`) names; raises WireError('invalid' | 'wrong_topic')."""
    try:
        receipt = Receipt.model_validate_json(payload, strict=False)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise WireError("invalid", f"receipt {where}: {first['msg']}") from exc
    if (receipt.site, receipt.device_id) != (site, device_id):
        raise WireError("wrong_topic", f"receipt for {receipt.site}/{receipt.device_id}, not {site}/{device_id}")
    return [str(m) for m in receipt.message_ids]
