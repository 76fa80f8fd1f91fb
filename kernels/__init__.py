"""C sources of the CPU kernels (installed as ``r1v_quant._kernels``, compiled on first use)."""
