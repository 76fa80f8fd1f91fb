"""Validate: reference logits of the source model, and artifacts measured against them."""
