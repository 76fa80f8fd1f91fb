"""The ``r1v-quant`` command line: one module per command, wired in ``app``."""
