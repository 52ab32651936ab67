"""The city's figures (docs/policy.md, clauses （十五）（十六）（十七）), kept current by the decider."""
