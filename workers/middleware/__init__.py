"""Worker middleware, one concern per module (hooks named before_*/after_*, as Dramatiq calls them)."""
