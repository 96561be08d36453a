"""Postline filter service."""
