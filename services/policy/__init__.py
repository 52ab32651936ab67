"""The policy office's tools: ``permitbus params check`` (``check.py``) and ``permitbus policy test``
(situation tests: ``situations.py`` reads them, ``run.py`` runs them, ``report.py`` prints).

They read the rules and the parameters (``services/rules/``) and run them as the decider does;
nothing here is on the path of a record.
"""
