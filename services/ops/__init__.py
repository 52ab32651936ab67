"""Operations: backlog of every stage, quarantine and dead-letter handling."""
