"""Pieces both sides share without importing each other: how a vidrd process starts or joins Ray safely.

`vidrd_data` (the builder) and `vidrd_model` (the trainer) never import each other; what both need lives here.
"""
