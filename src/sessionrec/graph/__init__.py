"""Global item graphs built from training sessions (FOG for FOCOL) and their propagation."""
