from detseg.config.loader import ConfigError, config_to_dict, dump_config, from_dict, load_config
from detseg.config.schema import Config

__all__ = ["Config", "ConfigError", "config_to_dict", "dump_config", "from_dict", "load_config"]
