"""Numbers for leads: the daily rollup, the reports page and its CSV, and the
morning digest sent to the admin channel and by email."""
