"""Quantize: GGML block encoders (bit-identical to ggml) and, later, AWQ."""
