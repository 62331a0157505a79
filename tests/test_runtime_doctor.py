"""agentctl doctor against a stand-in docker CLI: every check passes on a healthy fleet (exit 0),
and each broken part is named with what to do about it (exit 1, or a warning)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from agentfleet import doctor

RUNTIMES: dict[str, object] = {"runc": {}, "runsc": {}}
HEALTHY = [{"Labels": "com.docker.compose.project=agentfleet,com.docker.compose.service=gateway", "Status": "Up 2 hours (healthy)"},
           {"Labels": "com.docker.compose.service=marie,com.docker.compose.project=agentfleet", "Status": "Up 2 hours (healthy)"}]


def stand_in(bin_dir: Path, version_rc: int = 0, runtimes: dict[str, object] | None = None,
             containers: list[dict[str, str]] | None = None, http: str = "401") -> None:
    """A docker that answers version, info, ps and exec (the gateway's curl) as told."""
    lines = "\n".join(json.dumps(entry) for entry in (HEALTHY if containers is None else containers))
    script = f"""#!/bin/sh
case "$1" in
  version) [ {version_rc} = 0 ] && echo 26.1.5 && exit 0; echo 'Cannot connect to the Docker daemon' >&2; exit 1 ;;
  info) echo '{json.dumps(RUNTIMES if runtimes is None else runtimes)}' ;;
  ps) cat <<'EOF'
{lines}
EOF
  ;;
  exec) printf '%s' '{http}'; [ '{http}' = 000 ] && echo 'curl: (6) Could not resolve host' >&2 && exit 6; exit 0 ;;
esac
"""
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "docker").write_text(script)
    (bin_dir / "docker").chmod(0o755)


@pytest.fixture(name="fleet")
def fixture_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    (tmp_path / "key.state").write_text("set\n")
    (tmp_path / "tree" / "disk").mkdir(parents=True)
    audit = tmp_path / "report.json"
    audit.write_text(json.dumps([{"agent": "marie", "rows": [{"check": "read", "target": "x", "observed": "", "ok": True}]}]))
    return {"AGENTFLEET_PROJECT": "agentfleet", "AGENTFLEET_DOCTOR_SERVICES": "gateway,marie",
            "AGENTFLEET_DOCTOR_RUNTIMES": "runc,runsc", "AGENTFLEET_DOCTOR_UPSTREAM": "https://api.anthropic.test",
            "AGENTFLEET_MODEL_KEY_STATE": str(tmp_path / "key.state"), "AGENTFLEET_KEY_AGENTS": "marie",
            "AGENTFLEET_DOCTOR_AUDIT": str(audit), "ROOT": str(tmp_path / "tree")}


def diagnose(env: dict[str, str]) -> tuple[int, str]:
    lines: list[str] = []
    code = doctor.run(env, Path(env["ROOT"]), lines.append)
    return code, "\n".join(lines)


def test_a_healthy_fleet_passes(tmp_path: Path, fleet: dict[str, str]) -> None:
    stand_in(tmp_path / "bin")
    code, report = diagnose(fleet)
    if os.geteuid() == 0:  # the audit report counts only as root's
        assert code == 0 and "FAIL" not in report, report
    assert "OK    Docker engine 26.1.5" in report and "OK    gateway reaches https://api.anthropic.test (HTTP 401)" in report


@pytest.mark.parametrize(("broken", "named", "fix"), [
    ({"version_rc": 1}, "FAIL  Docker engine: Cannot connect", "systemctl status docker"),
    ({"runtimes": {"runc": {}}}, "FAIL  runtimes: runsc not registered", "re-run the deploy"),
    ({"containers": HEALTHY[:1]}, "FAIL  service marie: no container", "re-run the deploy"),
    ({"containers": [HEALTHY[0], {**HEALTHY[1], "Status": "Up 5 minutes (unhealthy)"}]}, "FAIL  service marie: Up 5 minutes (unhealthy)",
     "docker logs agentfleet-marie-1"),
    ({"containers": [HEALTHY[0], {**HEALTHY[1], "Status": "Exited (137) 3 seconds ago"}]}, "FAIL  service marie: Exited (137)",
     "up -d marie"),
    ({"http": "000"}, "FAIL  gateway upstream https://api.anthropic.test", "agent_stack_gateway_upstream"),
])
def test_each_broken_part_is_named_with_its_fix(tmp_path: Path, fleet: dict[str, str], broken: dict[str, object],
                                               named: str, fix: str) -> None:
    stand_in(tmp_path / "bin", **broken)  # type: ignore[arg-type]
    code, report = diagnose(fleet)
    assert code == 1 and named in report and fix in report.split(named, 1)[1].split("\n")[1], report


def test_a_missing_key_and_a_breached_audit_fail(tmp_path: Path, fleet: dict[str, str]) -> None:
    stand_in(tmp_path / "bin")
    (tmp_path / "key.state").write_text("missing\n")
    Path(fleet["AGENTFLEET_DOCTOR_AUDIT"]).write_text(json.dumps(
        [{"agent": "marie", "rows": [{"check": "read", "target": "x", "observed": "read it", "ok": False}]}]))
    code, report = diagnose(fleet)
    assert code == 1 and "FAIL  model key: not set; marie cannot reach the model" in report
    assert "agentctl secret set model-key" in report
    if os.geteuid() == 0:
        assert "FAIL  audit: 1 of 1 checks breached" in report


def test_no_audit_and_an_old_one_are_warnings(tmp_path: Path, fleet: dict[str, str]) -> None:
    stand_in(tmp_path / "bin")
    audit = Path(fleet["AGENTFLEET_DOCTOR_AUDIT"])
    old = time.time() - 30 * 86400
    os.utime(audit, (old, old))
    report = diagnose(fleet)[1]
    assert ("WARN  audit: the last one is 30 days old" in report) == (os.geteuid() == 0)
    audit.unlink()
    assert "WARN  audit: no report" in diagnose(fleet)[1]
