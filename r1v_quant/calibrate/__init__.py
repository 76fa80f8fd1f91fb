"""Calibrate: the calibration/evaluation samples (shipped in ``calib_data/`` or the user's JSONL)."""
