"""The run's configuration: the flag table (``options``), the environment knobs (``env``), the value rules
(``values``), the ``--dest ei`` rules (``project``), the sections of a RunConfig (``sections``) and
``build_config`` that makes one (``build``)."""

from augment.config.build import available_cpus, build_config
from augment.config.env import Knobs
from augment.config.options import FILL_CHOICES, LAYOUTS
from augment.config.sections import (
    BOOKS,
    PlanConfig,
    RenderConfig,
    RunConfig,
    RunSettings,
    SinkConfig,
    SourceConfig,
    StorageConfig,
)
from augment.config.values import ConfigError, parse_bool

__all__ = [
    "BOOKS",
    "FILL_CHOICES",
    "LAYOUTS",
    "ConfigError",
    "Knobs",
    "PlanConfig",
    "RenderConfig",
    "RunConfig",
    "RunSettings",
    "SinkConfig",
    "SourceConfig",
    "StorageConfig",
    "available_cpus",
    "build_config",
    "parse_bool",
]
