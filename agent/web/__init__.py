"""HTTP adapters: the management endpoint (the peer endpoint lives in agent/p2p/http.py)."""
