"""Make the collection's filter plugins and modules importable as plain Python modules."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# collections/ holds the repository as ansible_collections.agentfleet.fleet, for module_utils imports.
for plugins in sorted([ROOT / "plugins" / "filter", ROOT / "plugins" / "modules", ROOT / "runtime", ROOT / "runtime" / "relay",
                       ROOT / "roles" / "agent_audit" / "files", ROOT / "collections"]):
    sys.path.insert(0, str(plugins))
