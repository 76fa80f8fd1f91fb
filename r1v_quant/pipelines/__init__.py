"""Pipelines: the runs that string the stages together (read -> calibrate -> quantize -> write -> validate).

``awq`` and ``gguf`` build artifacts, ``reference`` computes the source model's logits, ``validate``
scores an artifact against them, ``release`` does all of it for CI.  Everything below this package
is a stage; only here are they called in sequence.
"""
