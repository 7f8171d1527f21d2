"""SQL, one module per table family."""
