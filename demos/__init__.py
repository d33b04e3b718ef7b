"""Live demos: a registry of small modules, a websocket engine that runs them."""
