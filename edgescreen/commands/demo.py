"""`edgescreen demo`: the office posture monitor end to end on a built-in clip."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgescreen.cli import Groups


def register(groups: Groups) -> None:
    parser = groups.top.add_parser(
        "demo",
        help="office posture monitor end to end on a built-in clip; prints the MQTT messages received",
        description="Build a clip from a real photo, start Mosquitto (unless --broker is given), run the device "
        "runtime on the clip and print every message a subscriber receives.",
    )
    parser.add_argument("--broker", help="use this broker (mqtt://HOST:PORT) instead of starting Mosquitto")
    parser.add_argument("--seconds", type=float, default=12.0, help="length of the clip")
    parser.add_argument("--window", type=float, default=4.0, help="posture window length in seconds")
    parser.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from edgescreen.demo import run_demo

    return run_demo(args.broker, sys.stdout, seconds=args.seconds, window_s=args.window)
