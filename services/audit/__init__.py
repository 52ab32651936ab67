"""The audit log of every disclosure: the chain, verify, export, signatures, a person's view."""
