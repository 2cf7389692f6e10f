"""How a call to a deployment can fail: the serving system's failures (the task is retried, not
failed) and the model's verdicts (its samples fail, with why)."""


class ServingLost(Exception):
    """The call never got a verdict from the model: its replica died or is (re)starting.

    Retrying later can succeed, so the task is NAKed for redelivery and its samples are not
    failed; only the model's own exceptions and badly typed outputs fail samples."""


class DeploymentUnavailable(ServingLost):
    """The Serve application is not there (stopped, failed, or never deployed)."""


class ModelFailed(RuntimeError):
    """The model raised (or returned what JSON cannot carry) on the samples of one call."""


class AnswerTooLarge(ModelFailed):
    """The replica's answer to one call was over the worker's bound (`max_answer_bytes`), so it
    was not read to its end (its connection is closed). A replica runs a user's model, so its
    answer is untrusted input: this is a verdict on the model's output for that call's samples,
    which fail with it. Not ServingLost (retrying gets the same answer), and a mini-batch is not
    split into smaller calls for it (a hostile model would answer each of them as large)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the replica's answer was over the {limit}-byte bound on one answer "
            "(the model's outputs for these samples are too large; a smaller mini_batch may fit)"
        )
        self.limit = limit
