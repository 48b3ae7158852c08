"""Storage drivers shipped with Portside."""
