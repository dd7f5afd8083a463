"""The validating admission webhook (the controller's port 9093, `/validate`)."""
