"""Files others can write, read safely; files replaced atomically; hearing that files changed."""
