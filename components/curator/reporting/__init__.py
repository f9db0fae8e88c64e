"""Reporting: the selection report, served-model quality, drift and the checks that fail a degraded run."""
