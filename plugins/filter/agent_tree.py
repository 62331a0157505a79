"""What the agent_tree tasks derive from agent_model_stack and the host's current accounts."""

from __future__ import annotations

from typing import Any, Callable

Table = dict[str, list[str]]


def agent_tree_id_moves(stack: dict[str, Any], passwd: Table, group: Table) -> dict[str, dict[str, int]]:
    """Old id -> new id for agent accounts whose uid/gid changed, so their files can be re-owned."""
    uids = {passwd[u["name"]][1]: u["uid"] for u in stack["users"]
            if u["name"] in passwd and int(passwd[u["name"]][1]) != u["uid"]}
    gids = {group[g["name"]][1]: g["gid"] for g in stack["groups"]
            if g["name"] in group and int(group[g["name"]][1]) != g["gid"]}
    return {"uid_map": uids, "gid_map": gids}


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"agent_tree_id_moves": agent_tree_id_moves}
