"""Two-phase finality: FinalityFlow, ReceiveFinalityFlow and the peer topics they speak."""
