"""Layer 3: compiled transliterations of the per-element batch update."""
