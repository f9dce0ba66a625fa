"""What operators write: kahooks.toml and its drop-ins, defaults, program options, ranges, patterns."""
