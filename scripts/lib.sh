# Shared by scripts/deploy and scripts/test: the pinned toolchain in .venv, made when missing
# or when requirements.txt changed.
AGENTFLEET_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AGENTFLEET_VENV=${AGENTFLEET_VENV:-$AGENTFLEET_ROOT/.venv}

agentfleet_venv() {
  local stamp="$AGENTFLEET_VENV/.requirements.sha256" want
  want=$(sha256sum "$AGENTFLEET_ROOT/requirements.txt" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "agentfleet: installing the pinned toolchain into $AGENTFLEET_VENV" >&2
    python3 -m venv "$AGENTFLEET_VENV"
    "$AGENTFLEET_VENV/bin/pip" install --quiet --disable-pip-version-check \
      -r "$AGENTFLEET_ROOT/requirements.txt" 2> >(grep -v "^WARNING: Location" >&2)
    echo "$want" >"$stamp"
  fi
  export PATH="$AGENTFLEET_VENV/bin:$PATH" VIRTUAL_ENV="$AGENTFLEET_VENV"
  export ANSIBLE_CONFIG="$AGENTFLEET_ROOT/ansible.cfg"
}
