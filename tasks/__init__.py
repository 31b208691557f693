"""Tasks built on adaprune."""
