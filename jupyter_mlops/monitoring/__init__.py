"""Monitoring: reference profiles, the prediction log, drift, quality,
calibration and the checks that turn thresholds into alerts."""
