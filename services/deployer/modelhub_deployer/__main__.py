"""`python -m modelhub_deployer`: run the deployer service until SIGINT/SIGTERM."""

from modelhub_runtime.runtime import configure_logging

# JSON logging first, so that what importing the app prints (warnings, Ray) is a JSON line too
configure_logging("deployer")

from modelhub_deployer.app import main  # noqa: E402

if __name__ == "__main__":
    main()
