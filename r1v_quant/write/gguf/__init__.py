"""GGUF files for llama.cpp, by concern: what goes in (:mod:`.plan`), what llama.cpp can run
(:mod:`.compat`), the keys (:mod:`.metadata`, :mod:`.vocab`) and the streamed file (:mod:`.writer`).
The export run that reads, encodes and writes is :mod:`r1v_quant.pipelines.gguf`."""
