"""A job's progress: the job ledger, a record per task chunk (`ledger`), the fold of outcomes and
status events into each job's counts (`fold`), and the compaction of an ended job's history
(`history`)."""
