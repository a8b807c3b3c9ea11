"""The smoke Lambda (`handler`): pings every queue and sends canaries to every pool."""
