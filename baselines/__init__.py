"""Other adaptive-ViT methods, plugged into adaprune only through its public API."""
