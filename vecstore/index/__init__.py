"""Search structures over a collection's stored vectors; they use kernels and read storage."""
