"""Layer 5: the tools (verify, diagnostics, probe, train, the CLI). Nothing below imports them."""
