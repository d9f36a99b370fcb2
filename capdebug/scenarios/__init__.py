"""Reproducible TLS failure scenarios on the engine's own peers, captured by a real tcpdump.

``SCENARIOS`` lists them (name, summary, expected triage verdicts); :func:`run_scenario` plays
one on loopback and writes ``NAME.pcapng`` with its secrets embedded.
"""

from __future__ import annotations

from .catalog import SCENARIOS, Scenario
from .runner import CAPTURE_PERMISSION_HELP, ScenarioRun, run_scenario

__all__ = ["CAPTURE_PERMISSION_HELP", "SCENARIOS", "Scenario", "ScenarioRun", "run_scenario"]
