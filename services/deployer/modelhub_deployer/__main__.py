"""`python -m modelhub_deployer`: run the deployer service until SIGINT/SIGTERM."""

import asyncio

from modelhub_contracts.runtime import configure_logging

# JSON logging first, so that what importing the app prints (warnings, Ray) is a JSON line too
configure_logging("deployer")

from modelhub_deployer.app import build_app  # noqa: E402


def main() -> None:
    asyncio.run(build_app().run())


if __name__ == "__main__":
    main()
