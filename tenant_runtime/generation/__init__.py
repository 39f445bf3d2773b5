"""Generation jobs: the job state machine, callback tokens, delivery of results, media links."""
