"""The partition worker: folds events into pictures, runs the rules, writes decisions to outboxes."""
