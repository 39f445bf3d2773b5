"""`python -m supervisor alerts test`: one test message through every configured channel, no database
needed. Prints one line per channel and exits 1 unless every channel took it."""

from __future__ import annotations

import argparse
import asyncio
import sys

from shared.settings import Settings
from supervisor.alerts.channels import ChannelError, channels_from
from supervisor.alerts.message import test_message

__all__ = ["add_alerts_parser", "run_alerts"]


def add_alerts_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    alerts = sub.add_parser(
        "alerts", help="operator alerts (PLATFORM_BOT_TOKEN + OPERATOR_CHAT_IDS, ALERT_WEBHOOK_URL)"
    )
    actions = alerts.add_subparsers(dest="action", required=True)
    actions.add_parser("test", help="send a test alert through every configured channel")


async def run_alerts(args: argparse.Namespace, settings: Settings) -> int:
    channels = channels_from(settings)
    if not channels:
        print(
            "error: no alert channel is configured: set PLATFORM_BOT_TOKEN and OPERATOR_CHAT_IDS, "
            "and/or ALERT_WEBHOOK_URL",
            file=sys.stderr,
        )
        return 1
    message = test_message(settings.instance_name, settings.alert_language)
    results = await asyncio.gather(*(c.send(message) for c in channels), return_exceptions=True)
    failed = 0
    for channel, result in zip(channels, results, strict=True):
        if isinstance(result, ChannelError):
            failed += 1
            print(f"{channel.name}: failed: {result}")
        elif isinstance(result, BaseException):
            raise result
        else:
            print(f"{channel.name}: sent")
    return 1 if failed else 0
