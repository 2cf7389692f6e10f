"""The deployer's watch: `running` deployments follow what Serve reports (Deployer.follow)."""

import asyncio
import logging

from modelhub_deployer.deploy import Deployer

log = logging.getLogger(__name__)
FOLLOW_PERIOD_S = 3.0


async def watch_deployments(deployer: Deployer, period: float = FOLLOW_PERIOD_S) -> None:
    """Run forever (cancelled at shutdown)."""
    while True:
        await asyncio.sleep(period)
        try:
            await deployer.follow()
        except Exception:  # keep watching: one bad round must not end it
            log.exception("following Serve's state failed")
