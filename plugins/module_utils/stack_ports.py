"""The ports the stack's services listen on inside their networks, in one place: the compose
filter, the role's configurations (through the agent_stack_port filter) and the audit read them."""

from __future__ import annotations

PORTS = {"gateway": 8080, "egress": 3128, "redis": 6379, "dockerproxy": 2375}
