"""The MCP server: llmtap's nine profiler tools and its control plane (alerts, silences, budgets,
pipeline health) for agents and MCP clients, over stdio (``llmtap mcp``) and streamable HTTP."""

from llmtap.mcpserver.http import BearerTokenMiddleware, McpHttpApp, http_app
from llmtap.mcpserver.server import ServerConfig, build_server

__all__ = ["BearerTokenMiddleware", "McpHttpApp", "ServerConfig", "build_server", "http_app"]
