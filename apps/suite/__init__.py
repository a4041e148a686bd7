"""Suite-wide commands: `gru-suite reproduce` and `gru-suite compare APP`."""
