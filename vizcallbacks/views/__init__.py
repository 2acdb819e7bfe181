"""Views: pure functions from computed arrays to typed records (no Keras, no writers)."""
