"""``llmtap serve``: the HTTP API over the read tools, and the live web dashboard (extra
``llmtap[serve]``). :func:`llmtap.serve.app.create_app` builds the ASGI app."""
