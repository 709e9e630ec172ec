"""What a failed delivery means: a failure that may pass keeps the job for a later attempt
(:func:`transient`), and one where the server itself is out of reach pauses every job for it
(:func:`unreachable`). Decided from the exception's type and MLflow's error codes; MLflow wraps
network failures of its REST client in an ``MlflowException`` whose only trace is its message,
so that one case is read from the text."""

from __future__ import annotations


class Undelivered(RuntimeError):
    """The job could not be written now (server unreachable, hung, out of space); it stays in
    the journal for a later attempt. ``unreachable``: the server itself is out of reach, so the
    other jobs for it wait too."""

    def __init__(self, message: str, unreachable: bool) -> None:
        super().__init__(message)
        self.unreachable = unreachable


class UnknownHandle(LookupError):
    """A run the job refers to was not created yet (its job is kept too): a failure that passes
    once that job is written."""


def transient(exc: BaseException) -> bool:
    """Whether a failure may pass (network, server, disk, a locked database): then the job is
    kept and tried again, never dropped."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (OSError, TimeoutError, UnknownHandle)):
            return True
        code = getattr(current, "error_code", None)
        if code in ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"):
            return True
        if type(current).__name__ in ("OperationalError", "DisconnectionError"):
            return True
        current = current.__cause__ or current.__context__
    return False


#: Exception types (by name: requests, urllib3 and the standard library) that mean the server
#: did not answer.
_NETWORK = frozenset({"ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "MaxRetryError",
                      "NewConnectionError", "ProtocolError", "RemoteDisconnected", "ConnectionRefusedError",
                      "ConnectionResetError", "TimeoutError", "socket.timeout"})


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not s for s in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def unreachable(exc: BaseException) -> bool:
    """The failure is the server being out of reach (refused, timed out, no answer)."""
    for current in _chain(exc):
        if any(cls.__name__ in _NETWORK for cls in type(current).__mro__):
            return True
        text = str(current)
        if type(current).__name__ == "MlflowException" and ("API request" in text or "Max retries" in text):
            return True  # MLflow's REST client: the network error survives only in the message
    return False


def busy_store(exc: BaseException) -> bool:
    """The database was locked or being set up by another process (a second try passes)."""
    for current in _chain(exc):
        text = str(current)
        if type(current).__name__ == "OperationalError" or any(
                s in text for s in ("database is locked", "already exists")):
            return True
    return False
