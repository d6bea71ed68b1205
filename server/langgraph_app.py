"""The app ``langgraph.json`` mounts into ``langgraph dev`` and the Agent Server
(``"http": {"app": "./server/langgraph_app.py:app"}``): see ``accord.server.app``. Building it
opens nothing; its lifespan opens accord's saver when the server starts."""

from accord.server.app import build_app

app = build_app()
