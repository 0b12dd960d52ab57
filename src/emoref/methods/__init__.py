"""One readable training function per method; METHODS maps a name to it (filled as methods land)."""
