"""Failures that are the serving system's, not the model's: the task is retried, not failed."""


class ServingLost(Exception):
    """The call never got a verdict from the model: its replica died or is (re)starting.

    Retrying later can succeed, so the task is NAKed for redelivery and its samples are not
    failed; only the model's own exceptions and badly typed outputs fail samples."""


class DeploymentUnavailable(ServingLost):
    """The Serve application is not there (stopped, failed, or never deployed)."""
