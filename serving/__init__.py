"""Serving side: what a deployed model runs to emit one forward record per instance."""
