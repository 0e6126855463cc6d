"""Pure data: tasks, DAGs, options, statuses and persisted records."""
