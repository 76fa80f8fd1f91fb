"""The shipped calibration and evaluation data (installed as ``r1v_quant._calib_data``)."""
