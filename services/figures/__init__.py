"""The city's figures (POLICY.md, clauses （十五）（十六）（十七）), kept current by the decider."""
