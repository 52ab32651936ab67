"""permitbus services. Where things are:

* ``services/ingress``   – where a department record enters: one normalizer per feed;
* ``services/picture``   – how canonical events fold into a person's picture;
* ``services/rules``     – where a rule lives: one module per entitlement, parameters as data;
* ``services/decider``   – the partition worker: picture + rules -> decisions (outbox);
* ``services/outlets``   – where a decision leaves: relay outbox -> outlet streams + rosters;
* ``services/scheduler`` – the change of date;
* ``services/figures``   – the city's figures;
* ``services/runtime``   – settings, topology, Redis connection, clock, masking;
* ``services/sim``       – the simulated Nanjing used by the demo, tests and benchmarks.
"""
