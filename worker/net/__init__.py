"""The network edges: UDP sockets, TCP servers and connections. The only code besides the channel
that touches file descriptors and the loop."""
