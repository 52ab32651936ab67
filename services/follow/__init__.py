"""The departments' side: ``permitbus follow <dept> --into <PostgreSQL URL>`` (docs/contract.md,
"Departments' side: following an outlet into a database").

rows.py      an outlet entry (or a roster entry) -> a row, or the reason it makes none; pure
store.py     PostgreSQL: the tables, the version-guarded upsert, the position moved with the rows
outlet.py    reading the outlet from the position, verified: a position trimmed away is noticed
snapshot.py  the rosters from the read API, from a base recorded before reading
follower.py  the loop: snapshot when needed, then one transaction per batch; recovery by restart
cli.py       the command: signals, exit status
"""
