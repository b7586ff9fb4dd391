"""Wiring for the Chalice app: builds the framework-neutral API once per Lambda container."""
