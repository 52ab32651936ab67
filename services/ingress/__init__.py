"""Where a department record enters: one normalizer per ingress feed.

Each turns the department's own format into canonical events (``schemas.events``) on the
partition streams, or copies the entry to ``quarantine:<feed>`` with a reason code.
"""
