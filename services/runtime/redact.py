"""What may be printed of a secret-bearing value (docs/contract.md, "Personal data at rest": no command ever prints a password
or a key): every URL that reaches a screen or a log goes through ``redact_url``; tokens and keys
are never printed at all (``Settings`` keeps them out of reprs and validation errors).

``redact_url("redis://app:s3cret@db:6379/0")`` -> ``redis://app:***@db:6379/0``; a password given
as a query parameter (``?password=…``) is starred the same way; a user-info without a colon
(``redis://s3cret@db``, which some clients read as a password) is starred whole. A URL that does
not parse is starred whole rather than risk it.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

STARS = "***"
_SECRET_PARAMS = {"password", "pass", "pwd", "token", "key", "secret"}


def redact_url(url: str | None) -> str:
    """``url`` with its password (user-info or query parameter) replaced by ``***``."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        if "@" in parts.netloc:
            user, colon, _ = parts.netloc.rpartition("@")[0].partition(":")
            host = f"{user}:{STARS}@{host}" if colon else f"{STARS}@{host}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, STARS if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*")
        return urlunsplit((parts.scheme, host, parts.path, query, parts.fragment))
    except ValueError:
        return STARS
