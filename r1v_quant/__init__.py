"""r1v-quant: quantization and export toolkit for Skywork-R1V vision-language models.

The pipeline reads left to right through the sub-packages:
``read`` -> ``calibrate`` -> ``quantize`` -> ``write`` -> ``validate``,
with ``engine`` (the one forward pass) and ``formats`` (tables of names and
layouts) shared by all of them.
"""

__version__ = "0.1.0"
