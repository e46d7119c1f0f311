"""Fleet health: presence (online/offline) and operator alarms."""
