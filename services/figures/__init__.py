"""The city's figures (docs/policy.md, "Figures for the city": clauses （十五）（十六）（十七）), kept current by the decider."""
