"""Formats: the tables that define each output (GGUF names and type mixes, AWQ layout, sizes)."""
