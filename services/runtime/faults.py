"""Which failures are the data's fault: the line between isolating a record and stopping a worker.

A worker after the normalizer (decider, relay) meets three kinds of failure:

* Redis away or unable to take writes now (connection lost, timeouts, OOM, BUSY, READONLY,
  LOADING, MASTERDOWN, lost functions): an outage. Nothing is wrong with the records; the
  worker backs off and tries the same work again (``services.runtime.outage``, ``lease``).
* A call that Redis (or redis-py, before sending it) refuses because of its arguments, or an
  exception in our own code while deciding, packing or relaying one record: the record's fault,
  whatever the bug behind it. The worker attributes it to that record, retries it, and parks it
  in a dead-letter stream after ``PERMITBUS_MAX_ATTEMPTS``; the rest flows.
* A state this release must not touch (``NewerPicture``): the worker stops, on purpose.
"""

from __future__ import annotations

from redis import exceptions as rx

# Replies that say "not now", whatever the arguments: an outage, never a record's fault.
_NOT_NOW = ("OOM", "BUSY", "READONLY", "LOADING", "MASTERDOWN", "NOSCRIPT", "NOREPLICAS", "TRYAGAIN",
            "CLUSTERDOWN", "MOVED", "ASK", "NOPERM", "NOAUTH", "EXECABORT", "UNBLOCKED")
_NOT_NOW_TYPES = (rx.OutOfMemoryError, rx.ReadOnlyError, rx.NoScriptError, rx.NoPermissionError,
                  rx.ExecAbortError, rx.ClusterDownError, rx.TryAgainError, rx.AskError)


def refused_for_data(exc: BaseException) -> bool:
    """True when a call was refused because of what it carried: an error reply raised by one of
    permitbus's functions (our ``PBARG`` checks, or a Lua error inside ``@user_function``), or
    arguments redis-py cannot send (``DataError``). Sending the same call again would be refused
    again; sending it without the record that caused it would not."""
    if isinstance(exc, rx.DataError):
        return True
    if not isinstance(exc, rx.ResponseError) or isinstance(exc, _NOT_NOW_TYPES):
        return False
    text = str(exc)
    if text.startswith(_NOT_NOW) or "function not found" in text.lower():
        return False
    return text.startswith("PBARG") or "@user_function" in text


def is_outage(exc: BaseException) -> bool:
    """Redis away or refusing writes for now (or the connection's own failure)."""
    if isinstance(exc, (rx.ConnectionError, rx.TimeoutError, OSError)):
        return True
    return isinstance(exc, rx.ResponseError) and not refused_for_data(exc)


def is_data_fault(exc: BaseException) -> bool:
    """Anything that is the record's fault: a refusal for its data, or any exception that is
    not Redis's (our own code tripping over the record). ``NewerPicture`` is handled before."""
    if isinstance(exc, rx.RedisError):
        return refused_for_data(exc)
    return isinstance(exc, Exception) and not isinstance(exc, OSError)


def brief(exc: BaseException) -> str:
    """The error as a dead letter records it (redis-py's own ``repr`` leaves out the message)."""
    text = f"{type(exc).__name__}({str(exc)!r})" if isinstance(exc, rx.RedisError) else repr(exc)
    return text[:500]
