"""Torch GGML block encoders, split by family (the entry point is ``..ggml_encoders.quantize``).

* ``emulation``: float32/int helpers that reproduce C's scalar semantics (``nearest_int``,
  truncation, ``sqrtf``, f16 rounding, in-order sums, first-maximum searches);
* ``search``: ggml's shared scale searches (``make_qx_quants``, ``make_q3_quants``,
  ``make_qkx2_quants`` / ``make_qkx3_quants``, ``make_qp_quants``), vectorized across groups;
* ``legacy``: f16, bf16 and the 32-value blocks Q4_0 .. Q8_0, with and without importance;
* ``kquants``: Q2_K .. Q6_K super-blocks, with and without importance;
* ``iquants``: the non-linear IQ4_NL and IQ4_XS.
"""
