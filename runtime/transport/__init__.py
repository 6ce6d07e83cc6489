"""Node-to-node transport: authenticated, length-prefixed, versioned TCP frames."""
