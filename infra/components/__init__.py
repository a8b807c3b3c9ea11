"""Pulumi ComponentResources of the stack. Importing them creates nothing; constructing them does."""
