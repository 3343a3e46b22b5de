"""Loopback fake servers that speak the wire formats of the LLM APIs llmtap integrates with."""
