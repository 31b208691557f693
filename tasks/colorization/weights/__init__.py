"""Trained colorizers shipped with the package (safetensors, with a JSON card each)."""
