"""agentfleet agent runtime: takes tasks from files, runs them through a backend (stdlib only)."""
