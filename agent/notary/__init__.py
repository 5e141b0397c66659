"""The notary role: a persistent uniqueness service that signs what it commits."""
