"""Suite-wide settings."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Property tests run on a shared 2-core machine next to real tools: time limits per example
# would make them fail by load, not by a bug. Examples are bounded by each test's own settings.
settings.register_profile("capdebug", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("capdebug")
