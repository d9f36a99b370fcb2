"""The build backend of capdebug: setuptools' own, plus mypy as a build requirement when the
optional compiled build is asked for (``CAPDEBUG_MYPYC=1``, see setup.py and README "Compiled
build"). Without the switch it is exactly setuptools.build_meta: a pure package, no compiler,
no mypy."""

from __future__ import annotations

import os

from setuptools import build_meta as _setuptools
from setuptools.build_meta import (
    build_editable,
    build_sdist,
    build_wheel,
    get_requires_for_build_sdist,
    prepare_metadata_for_build_editable,
    prepare_metadata_for_build_wheel,
)

__all__ = [
    "build_editable",
    "build_sdist",
    "build_wheel",
    "get_requires_for_build_editable",
    "get_requires_for_build_sdist",
    "get_requires_for_build_wheel",
    "prepare_metadata_for_build_editable",
    "prepare_metadata_for_build_wheel",
]

#: The mypy whose mypyc the compiled build was tested with (older ones crash on some modules).
MYPYC_REQUIREMENT = "mypy>=2.4"


def _mypyc() -> list[str]:
    return [MYPYC_REQUIREMENT] if os.environ.get("CAPDEBUG_MYPYC", "") == "1" else []


def get_requires_for_build_wheel(config_settings: dict[str, str] | None = None) -> list[str]:
    return [*_setuptools.get_requires_for_build_wheel(config_settings), *_mypyc()]


def get_requires_for_build_editable(config_settings: dict[str, str] | None = None) -> list[str]:
    return [*_setuptools.get_requires_for_build_editable(config_settings), *_mypyc()]
