"""The built-in training recipes (`default.toml`, `full.toml`), read by ``classifier.config.builtin_recipe``."""
