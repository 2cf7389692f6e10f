# JSON logging first, so that what importing the app prints (warnings) is a JSON line too
from modelhub_runtime.runtime import configure_logging

configure_logging("gateway")

from modelhub_gateway.app import main  # noqa: E402

main()
