"""The event bus (XSUB/XPUB broker), its codec and envelope, and the control RPC."""
