"""Spoken-word recognition: raw audio in, a GRU over log-mel features, a label out."""
