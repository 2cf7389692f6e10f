# JSON logging first, so that what importing the app prints (warnings) is a JSON line too
from modelhub_runtime.runtime import configure_logging

configure_logging("scheduler")

from modelhub_scheduler.app import main  # noqa: E402

main()
