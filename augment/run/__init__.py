"""The run loop: which source and sink, read -> render -> write, the render workers."""
