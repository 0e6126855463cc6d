"""Pure decisions: given a run's state and an event, what happens next. No I/O here."""
