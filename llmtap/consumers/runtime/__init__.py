"""The consumer-group contract every worker shares: read, decode, commit with XACK, reclaim."""
