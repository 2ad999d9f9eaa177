"""Running load and controlling stacks: the load client, the probe, the stack, the topology."""
