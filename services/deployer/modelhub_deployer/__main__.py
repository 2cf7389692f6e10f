"""`python -m modelhub_deployer`: run the deployer service until SIGINT/SIGTERM."""

import asyncio

from modelhub_contracts.runtime import configure_logging

from modelhub_deployer.app import build_app


def main() -> None:
    configure_logging("deployer")
    asyncio.run(build_app().run())


if __name__ == "__main__":
    main()
