"""Building blocks shared by several architectures (graphs, calendar embeddings, output heads)."""
