"""Video providers: ByteCompute, Leonardo.AI and the offline simulator."""
