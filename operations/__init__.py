"""Running the service: ops commands from allowlisted chat senders (audited)
and the system page."""
