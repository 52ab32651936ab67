"""Where a decision leaves: the relay moves outbox entries to the department outlets and keeps
each outlet's roster; ``read`` gives a department its roster with the matching outlet position."""
