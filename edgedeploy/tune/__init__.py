"""``edgedeploy tune``: find the fastest int8 build of a target whose accuracy drop is within a budget."""
