"""People and work: tasks, their parsing, states and permissions."""
