"""Website monitors and price watch: pages fetched through the gateway's
browser tool, snapshots diffed, alerts raised once."""
