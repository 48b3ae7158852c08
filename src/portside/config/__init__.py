"""Configuration with Docker Distribution's keys and REGISTRY_* environment overrides."""

from portside.config.loader import ConfigError, load_config
from portside.config.schema import Config

__all__ = ["Config", "ConfigError", "load_config"]
